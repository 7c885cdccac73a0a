"""Fast development loop for the anomaly model's sensitivity: train on features, score dev faults.

    python -m scripts.research.sweep_anomaly --bands 64 --steps 4000 --run runs/sweep/b64

Trains the shipped network on the benchmark's training flights (the same split, seed and
optimiser as `streamae anomaly train`, without export or calibration, so a run costs only its
steps), then reads the signed residual of development faults, the benchmark's four kinds
injected into uav/val/normal with seed 11 (never the benchmark's held-out flights), through
candidate window views, each standardised on normal training windows as the model's own views
are. Per view: AUC overall, per kind and per level, and on the real broken propellers.
A finished run's checkpoint is reused. Needs the train extra (torch) and ../shared/data/machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import numpy as np
import torch

from scripts.bench import bench_anomaly as bench
from scripts.research.explore_anomaly_views import DEV_SEED, top_mean
from streamae.anomaly import metrics
from streamae.anomaly.features import FeatureConfig
from streamae.train.anomaly import (
    SCORE_WINDOWS,
    STATS_WINDOWS,
    NetConfig,
    SparseConvAE,
    WindowSampler,
    _set_band_stats,
    _train,
    load_frames,
    with_levels,
)


def trained(cfg: FeatureConfig, run: Path, steps: int, hidden: int, code: int, sparsity: float, seed: int,
            train: list[Path]) -> tuple[SparseConvAE, FeatureConfig, np.ndarray]:
    """(net, features with levels, SCORE_WINDOWS normal training windows), training if needed."""
    torch.manual_seed(seed)  # before the net is made, as `streamae anomaly train` does
    frames, _ = load_frames(train, cfg)
    cfg = with_levels(cfg, frames)
    net = SparseConvAE(NetConfig(cfg.bands, cfg.window_frames, hidden, code))
    ckpt = run / "checkpoint.pt"
    if ckpt.exists():
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)["model"]
        net.load_state_dict({**net.state_dict(), **saved})  # runs from before the band buffers
    else:
        run.mkdir(parents=True, exist_ok=True)
        sampler = WindowSampler(frames, cfg, seed)
        _set_band_stats(net, sampler.batch(STATS_WINDOWS))
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        args = argparse.Namespace(minutes=0, steps=steps, lr=2e-3, batch=32, sparsity=sparsity,
                                  log_seconds=60, checkpoint_minutes=1e9)
        _train(net, opt, sampler, args, 0, 0.0, ckpt, cfg)
    net.eval()
    return net, cfg, WindowSampler(frames, cfg, seed + 2).batch(SCORE_WINDOWS)


def residuals(net: SparseConvAE, windows: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        z = [(torch.from_numpy(windows[i:i + 256]) - net.mean) / net.std for i in range(0, len(windows), 256)]
        return torch.cat([net.decoder(net.encoder(x)) - x for x in z]).numpy()


def per_band(stat):
    """A per-band statistic [N, bands] -> its worst band, each band in units of its normal spread."""
    def view(r, ref):
        s, s_ref = stat(r), stat(ref)
        centre, spread = np.median(s_ref, 0), s_ref.std(0) + 1e-9
        return ((s - centre) / spread).max(1)
    return view


def plain(fn):
    return lambda r, ref: fn(r)


def frame_z(r, ref):
    """Worst frames of the per-band-normalised squared error (each band over its normal mean)."""
    scale = (ref ** 2).mean((0, 2))[None, :, None]
    return top_mean(((r ** 2) / scale).mean(1), 6, 1)


def smoothed(r: np.ndarray, k: int) -> np.ndarray:
    """The residual averaged over k frames (valid part): slow error stays, frame noise averages out."""
    c = np.cumsum(np.pad(r, [(0, 0), (0, 0), (1, 0)]), axis=2)
    return (c[..., k:] - c[..., :-k]) / k


VIEWS = {
    "band": plain(lambda r: (r ** 2).mean(2).max(1)),
    "frame": plain(lambda r: top_mean((r ** 2).mean(1), 6, 1)),
    "band sq z": per_band(lambda r: (r ** 2).mean(2)),
    "band signed z": per_band(lambda r: r.mean(2)),
    "band abs-signed z": per_band(lambda r: np.abs(r.mean(2))),
    "frame bandnorm": frame_z,
    "band top-10% frames z": per_band(lambda r: top_mean(r, 12, 2)),
    "band log z": per_band(lambda r: np.log((r ** 2).mean(2) + 1e-6)),
} | {f"band sq z, smoothed {k}": per_band(lambda r, k=k: (smoothed(r, k) ** 2).mean(2))
     for k in (4, 8, 16, 32)}
COMBOS = {
    "max(band, frame) (shipped before issue 22)": ("band", "frame"),
    "max(band sq z, frame) (shipped)": ("band sq z", "frame"),
    "max(band signed z, frame)": ("band signed z", "frame"),
    "max(band signed z, band, frame)": ("band signed z", "band", "frame"),
    "max(band signed z, frame bandnorm)": ("band signed z", "frame bandnorm"),
    "max(band sq z, band signed z, frame)": ("band sq z", "band signed z", "frame"),
    "max(band top z, frame)": ("band top-10% frames z", "frame"),
    "max(band sq z, frame bandnorm)": ("band sq z", "frame bandnorm"),
    "max(band log z, frame)": ("band log z", "frame"),
    "max(band abs-signed z, frame)": ("band abs-signed z", "frame"),
    "max(band abs-signed z, band sq z)": ("band abs-signed z", "band sq z"),
    "max(band abs-signed z, band sq z, frame)": ("band abs-signed z", "band sq z", "frame"),
} | {f"max(band sq z smoothed {k}, frame)": (f"band sq z, smoothed {k}", "frame") for k in (4, 8, 16, 32)}


def evaluate(net, cfg, ref_windows, dev) -> dict:
    ref = residuals(net, ref_windows)
    resid = {k: residuals(net, bench.window_features(w, cfg)) for k, w in dev.items()}
    z = {}
    for name, view in VIEWS.items():
        s_ref = view(ref, ref)
        centre, spread = np.median(s_ref), s_ref.std() + 1e-9
        z[name] = {k: (view(r, ref) - centre) / spread for k, r in resid.items()}
    for name, parts in COMBOS.items():
        z[name] = {k: np.max([z[p][k] for p in parts], axis=0) for k in resid}
    return z


def table(z: dict) -> list[str]:
    cols = ["overall", *bench.KINDS, *[f"{lv} dB" for lv in bench.LEVELS_DB], "real"]
    out = ["| view | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, s in z.items():
        faults = {k: v for k, v in s.items() if isinstance(k, tuple)}
        groups = {"overall": list(faults)} | {k: [(k, lv) for lv in bench.LEVELS_DB] for k in bench.KINDS}
        groups |= {f"{lv} dB": [(k, lv) for k in bench.KINDS] for lv in bench.LEVELS_DB}
        cells = [metrics.summary(s["clean"], np.concatenate([faults[g] for g in keys])) for keys in
                 groups.values()] + [metrics.summary(s["normal"], s["anomalous"])]
        out.append(f"| {name} | " + " | ".join(f"{c['auc']:.3f}/{c['pauc']:.2f}" for c in cells) + " |")
    return out


def band_level_oracle(clean: np.ndarray, faulty: dict, cfg: FeatureConfig) -> list[str]:
    """What a fault's level in one band can show at all: each faulty window's largest shift of a
    band's mean level (the model's normalised log-mel) from the same window clean, in units of
    that band's spread over clean windows; an oracle that knows the band and sees that shift over
    Gaussian normal variation scores AUC = mean of Phi(shift / sqrt 2). Blind to timing (a brief
    rattle moves a band's mean little but its worst frames a lot)."""
    def band_means(wins: np.ndarray) -> np.ndarray:
        return bench.window_features(wins, cfg).mean(axis=2)
    mc = band_means(clean)
    spread = mc.std(axis=0)
    lines = []
    for kind in bench.KINDS:
        cells = []
        for level in bench.LEVELS_DB:
            shift = (np.abs(band_means(faulty[(kind, level)]) - mc) / spread).max(axis=1)
            auc = np.mean([0.5 * (1 + math.erf(x / 2)) for x in shift])  # Phi(x / sqrt 2)
            cells.append(f"{level} dB: shift {np.median(shift):.2f}, AUC {auc:.3f}")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=bench.REPO.parent / "shared/data/machine")
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--bands", type=int, default=64)
    p.add_argument("--n-fft", type=int, default=1024)
    p.add_argument("--fmin", type=float, default=50.0)
    p.add_argument("--hidden", type=int, default=96)
    p.add_argument("--code", type=int, default=12)
    p.add_argument("--sparsity", type=float, default=0.02)
    p.add_argument("--oracle", action="store_true", help="also the band-level oracle (band_level_oracle)")
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = dataclasses.replace(FeatureConfig(), bands=args.bands, n_fft=args.n_fft, fmin=args.fmin)
    if args.n_fft != 1024:
        cfg = dataclasses.replace(cfg, window_frames=(2 * bench.RATE - args.n_fft) // cfg.hop // 2 * 2)
    train, _, val_normal, val_anom = bench.uav_split(args.data)
    net, cfg, ref_windows = trained(cfg, args.run, args.steps, args.hidden, args.code, args.sparsity, 0,
                                    train)
    clean, faulty = bench.injected([bench.load(f) for f in val_normal], DEV_SEED)
    dev = {"clean": clean, "normal": clean,
           "anomalous": bench.scale(np.concatenate([bench.windows_of(bench.load(f))[0] for f in val_anom]))}
    dev |= faulty
    lines = table(evaluate(net, cfg, ref_windows, dev))
    if args.oracle:
        lines += ["", "Band-level oracle (median shift in normal spreads, AUC):", ""]
        lines += band_level_oracle(clean, faulty, cfg)
    (args.run / "views.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
