"""Which way of reading the anomaly model's reconstruction error sees which fault.

    python -m scripts.research.explore_anomaly_views runs/bench-anomaly/uav-run/checkpoint.pt

Development numbers for choosing the window score: the benchmark's four faults are injected
into uav/val/normal (seed 11), never into the flights `bench_anomaly.py` holds out, so a choice
made here is not fitted to the benchmark's test windows. Each candidate view reduces the
signed residual [bands, frames] of a window to one number, standardised by its median and
spread on training windows (as the model does for its own views); it is scored alone and as
a third term in the model's max(band, frame). Two references that do not use the model show
what fine frequency detail and slow level modulation carry about the speed fault.
Needs the train extra (torch) and ../shared/data/machine.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from scripts.bench import bench_anomaly as bench
from streamae.anomaly import metrics
from streamae.anomaly.features import FeatureConfig, logmel
from streamae.train.anomaly import TOP_FRAMES_FRACTION, NetConfig, SparseConvAE, WindowSampler, load_frames

DEV_SEED = 11  # the benchmark injects into its held-out flights with seed 7
TOP_FRAMES = max(1, round(FeatureConfig().window_frames * TOP_FRAMES_FRACTION))  # as SparseConvAE.top_frames
REFERENCE_WINDOWS = 1000


def top_mean(x: np.ndarray, k: int, axis: int) -> np.ndarray:
    return -np.mean(np.partition(-x, k - 1, axis=axis).take(range(k), axis=axis), axis=axis)


# signed residual r [N, bands, frames] -> one number per window
VIEWS = {
    "band (shipped)": lambda r: (r ** 2).mean(2).max(1),
    "frame (shipped)": lambda r: top_mean((r ** 2).mean(1), TOP_FRAMES, 1),
    "mean": lambda r: (r ** 2).mean((1, 2)),
    "median frame": lambda r: np.median((r ** 2).mean(1), 1),
    "low-band mean (< 1.1 kHz)": lambda r: (r[:, :24] ** 2).mean((1, 2)),
    "time variance, low bands": lambda r: r[:, :24].var(2).mean(1),
    "frame-to-frame change": lambda r: (np.diff(r, axis=2) ** 2).mean((1, 2)),
    "worst band's median": lambda r: np.median(r ** 2, 2).max(1),
}
SHIPPED = ("band (shipped)", "frame (shipped)")


def residuals(net: SparseConvAE, windows: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        z = [(torch.from_numpy(windows[i:i + 256]) - net.mean) / net.std for i in range(0, len(windows), 256)]
        return torch.cat([net.decoder(net.encoder(x)) - x for x in z]).numpy()


def log_frequency_autocorrelation(wins: np.ndarray, n_fft: int = 4096, step: float = 0.0025) -> np.ndarray:
    """Fine line structure, 400-4000 Hz on a 0.25 % log-frequency grid, envelope removed:
    its autocorrelation at lags 0.25-4 %. A part 1-3 % off speed would add lines at those lags,
    and a change of the machine's own speed only shifts the grid, so the feature ignores it."""
    frames = np.lib.stride_tricks.sliding_window_view(wins, n_fft, axis=-1)[..., ::n_fft // 4, :]
    power = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1)) ** 2
    grid = 400 * (1 + step) ** np.arange(int(np.log(10) / np.log(1 + step)))
    idx = np.fft.rfftfreq(n_fft, 1 / bench.RATE)
    logp = np.log(np.stack([np.interp(grid, idx, p) for p in power.reshape(-1, power.shape[-1])]) + 1e-12)
    envelope = np.apply_along_axis(lambda x: np.convolve(x, np.ones(41) / 41, mode="same"), -1, logp)
    lines = logp - envelope
    lines /= np.sqrt((lines ** 2).mean(-1, keepdims=True)) + 1e-9
    ac = np.stack([(lines[:, :-lag] * lines[:, lag:]).mean(-1) for lag in range(1, 17)], -1)
    return ac.reshape(*power.shape[:-2], -1, 16).mean(-2)


def level_modulation(wins: np.ndarray) -> np.ndarray:
    """Log power of the 0.5-20 Hz level fluctuation of the 24 lowest mel bands: beating between
    a harmonic and a copy 1-3 % off would add to it."""
    cfg = FeatureConfig()
    out = []
    for w in wins:
        m = logmel(w, cfg)[:24]
        m = m - m.mean(1, keepdims=True)
        spectrum = np.abs(np.fft.rfft(m * np.hanning(m.shape[1]), axis=1)) ** 2
        out.append(np.log(spectrum[:, 1:40].mean(0) + 1e-9))
    return np.array(out)


def gaussian_detector(feature, train_wins: np.ndarray):
    ref = np.concatenate([feature(train_wins[i:i + 200]) for i in range(0, len(train_wins), 200)])
    mu, sd = ref.mean(0), ref.std(0) + 1e-9
    return lambda w: (((feature(w) - mu) / sd) ** 2).mean(-1)


def rows(clean: np.ndarray, faulty: dict, normal: np.ndarray, anomalous: np.ndarray) -> list[str]:
    """AUC / pAUC / TPR@1%FPR overall, per kind, speed at -15 dB, and on the real broken propellers."""
    views = {"overall": np.concatenate(list(faulty.values()))}
    views |= {k: np.concatenate([faulty[(k, level)] for level in bench.LEVELS_DB]) for k in bench.KINDS}
    views["speed -15 dB"] = faulty[("speed", -15)]
    cells = [metrics.summary(clean, s) for s in views.values()] + [metrics.summary(normal, anomalous)]
    return [f"{c['auc']:.3f} / {c['pauc']:.3f} / {c['tpr_at_1pct_fpr']:.3f}" for c in cells]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="an anomaly training checkpoint (RUN_DIR/checkpoint.pt)")
    p.add_argument("--data", type=Path, default=bench.REPO.parent / "shared/data/machine")
    p.add_argument("--baseline-steps", type=int, default=8000, help="0 skips the DCASE baseline row")
    args = p.parse_args()
    torch.set_num_threads(1)
    ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    net = SparseConvAE(NetConfig.from_dict(ckpt["net"]))
    net.load_state_dict(ckpt["model"])
    net.eval()
    cfg = FeatureConfig.from_dict(ckpt["features"])

    train, _, val_normal, val_anomalous = bench.uav_split(args.data)
    reference = residuals(
        net, WindowSampler(load_frames(train, cfg)[0], cfg, seed=2).batch(REFERENCE_WINDOWS)
    )
    raw_normal = np.concatenate([bench.windows_of(bench.load(f))[0] for f in val_normal])
    raw_anomalous = np.concatenate([bench.windows_of(bench.load(f))[0] for f in val_anomalous])
    clean, faulty = bench.injected([bench.load(f) for f in val_normal], DEV_SEED)
    audio = {
        "clean": clean,
        "normal": bench.scale(raw_normal),
        "anomalous": bench.scale(raw_anomalous),
    } | faulty
    resid = {k: residuals(net, bench.window_features(w, cfg)) for k, w in audio.items()}

    def standardised(view):
        ref = view(reference)
        centre, spread = np.median(ref), ref.std()
        return {k: (view(r) - centre) / spread for k, r in resid.items()}
    z = {name: standardised(view) for name, view in VIEWS.items()}

    table = {}
    for name in VIEWS:
        table[name] = z[name]
        if name not in SHIPPED:
            table[f"max(band, frame, {name})"] = {
                k: np.max([z[v][k] for v in (*SHIPPED, name)], axis=0) for k in resid
            }
    table["max(band, frame) (shipped)"] = {k: np.max([z[v][k] for v in SHIPPED], axis=0) for k in resid}

    train_wins = bench.scale(np.concatenate([bench.windows_of(bench.load(f))[0] for f in train]))
    detectors = {
        "ref: log-frequency line autocorrelation": gaussian_detector(
            log_frequency_autocorrelation, train_wins[::40]
        ),
        "ref: low-band level modulation": gaussian_detector(level_modulation, train_wins[::40]),
    }
    if args.baseline_steps:
        detectors["DCASE 2020 baseline"] = bench.train_baseline(train_wins, args.baseline_steps)
    for name, score in detectors.items():
        table[name] = {k: score(w) for k, w in audio.items()}

    print("| view | overall | clicks | tone | rattle | speed | speed -15 dB | real broken |")
    print("|---|---|---|---|---|---|---|---|")
    for name, s in table.items():
        cells = rows(
            s["clean"], {k: v for k, v in s.items() if isinstance(k, tuple)}, s["normal"], s["anomalous"]
        )
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
