"""Masked-band prediction as an anomaly view: predict each group of bands from the others.

    python -m scripts.research.masked_bands --run runs/sweep/b64 --steps 20000 [--group 8]

The shipped autoencoder sees a fault and partly reconstructs it, so weak steady faults barely
move its error (docs/experiments/anomaly.md, "Why 0.85 is out of reach for this design"). Here a
small 1-D conv net over time, bands as channels, gets the normalised log-mel window (the shipped
model's per-band standardisation, its statistics from the same windows) with a group of
`--group` adjacent bands replaced by 0 and a mask channel per band marking them, and predicts the
hidden bands; trained on the benchmark's training flights, one random group per example. A
window is scored by hiding each group in turn (the masked copies batched), reading each group's
prediction error through views (mean over frames, worst frames), each group in units of its own
spread on normal training windows, the worst group taken; then each view is standardised on the
same normal windows as sweep_anomaly's are and tried alone and with the shipped score.
Dev faults, the real broken propellers and the shipped network come from sweep_anomaly (same
split, seeds and run folder: a finished run's checkpoint, and this script's masked.pt, are
reused). Prints AUC overall, per kind x level cell and on the real broken propellers.
Needs the train extra (torch) and ../shared/data/machine.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from scripts.bench import bench_anomaly as bench
from scripts.research.explore_anomaly_views import DEV_SEED, TOP_FRAMES, top_mean
from scripts.research.sweep_anomaly import evaluate, trained
from streamae.anomaly import metrics
from streamae.anomaly.features import FeatureConfig
from streamae.train.anomaly import SCORE_WINDOWS, STATS_WINDOWS, WindowSampler, load_frames, with_levels
from streamae.train.loop import learning_rate

SHIPPED = "max(band sq z, frame) (shipped)"


class MaskedBandNet(nn.Module):
    """[B, bands, frames] window + [B, bands] mask (1 = hidden) -> [B, bands, frames] prediction.

    The input is standardised per band as SparseConvAE's is; hidden bands are set to 0 (their
    normal mean) and the mask rides along as `bands` constant channels. Four convolutions over
    time at full frame rate, the middle one dilated, about SparseConvAE's size."""

    def __init__(self, bands: int, hidden: int = 96):
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, bands, 1))
        self.register_buffer("std", torch.ones(1, bands, 1))
        self.net = nn.Sequential(
            nn.Conv1d(2 * bands, hidden, 5, padding=2), nn.ReLU(),
            nn.Conv1d(hidden, hidden, 5, padding=4, dilation=2), nn.ReLU(),
            nn.Conv1d(hidden, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv1d(hidden, bands, 5, padding=2))

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, :, None].expand_as(z)
        return self.net(torch.cat([z * (1 - m), m], dim=1))


def group_masks(bands: int, group: int) -> torch.Tensor:
    """[bands // group, bands]: row g hides bands g*group .. g*group + group - 1."""
    return torch.kron(torch.eye(bands // group), torch.ones(1, group))


def train_masked(net: MaskedBandNet, sampler: WindowSampler, masks: torch.Tensor, steps: int, batch: int,
                 lr: float, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    start = last = time.time()
    recent = []
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = learning_rate(lr, step, step / steps, 100)
        z = net.standardise(torch.from_numpy(sampler.batch(batch)))
        mask = masks[torch.randint(len(masks), (batch,), generator=gen)]
        err = (net(z, mask) - z).pow(2) * mask[:, :, None]
        loss = err.sum() / (mask.sum() * z.shape[2])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        recent.append(loss.item())
        if time.time() - last > 60 or step == 199:
            rate = (step + 1) / (time.time() - start)
            print(f"step {step + 1}/{steps} | {(time.time() - start) / 60:.1f} min, {rate:.1f} steps/s | "
                  f"masked error {np.mean(recent[-100:]):.4f}", flush=True)
            last = time.time()
    net.eval()
    return {"steps": steps, "seconds": round(time.time() - start, 1),
            "loss": round(float(np.mean(recent[-100:])), 4)}


@torch.no_grad()
def masked_residuals(net: MaskedBandNet, windows: np.ndarray, masks: torch.Tensor,
                     batch: int = 16) -> np.ndarray:
    """Signed residual [N, bands, frames] of every band predicted with its own group hidden:
    each window's len(masks) masked copies go through the net as one batch."""
    groups, bands = masks.shape
    owner = masks.argmax(0)  # each band's group
    out = []
    for i in range(0, len(windows), batch):
        z = net.standardise(torch.from_numpy(windows[i:i + batch]))
        n = len(z)
        pred = net(z.repeat_interleave(groups, 0), masks.repeat(n, 1)).view(n, groups, bands, -1)
        out.append((pred[:, owner, torch.arange(bands)] - z).numpy())
    return np.concatenate(out)


def per_unit(stat, size: int):
    """A statistic of the residual per band [N, bands] -> per unit of `size` bands (mean), each unit
    in its own normal spread, the worst unit."""
    def view(r, ref):
        def units(x):
            s = stat(x)
            return s.reshape(len(s), -1, size).mean(2)
        s, s_ref = units(r), units(ref)
        return ((s - np.median(s_ref, 0)) / (s_ref.std(0) + 1e-9)).max(1)
    return view


def views(group: int) -> dict:
    def sq_mean(r):
        return (r ** 2).mean(2)

    def sq_top(r):
        return top_mean(r ** 2, TOP_FRAMES, 2)

    def signed(r):
        return np.abs(r.mean(2))

    return {
        "masked group mean z": per_unit(sq_mean, group),
        "masked group top-frames z": per_unit(sq_top, group),
        "masked band mean z": per_unit(sq_mean, 1),
        "masked band top-frames z": per_unit(sq_top, 1),
        "masked band abs signed mean z": per_unit(signed, 1),
        "masked frame (all bands, worst frames)": lambda r, ref: top_mean((r ** 2).mean(1), TOP_FRAMES, 1),
    }


def combos() -> dict:
    return {
        "max(masked group mean z, group top z)": ("masked group mean z", "masked group top-frames z"),
        "max(masked band mean z, band top z)": ("masked band mean z", "masked band top-frames z"),
        "max(masked group mean z, masked frame)": ("masked group mean z",
                                                   "masked frame (all bands, worst frames)"),
        "max(masked group mean z, shipped)": ("masked group mean z", SHIPPED),
        "max(masked group mean z, group top z, shipped)": ("masked group mean z", "masked group top-frames z",
                                                           SHIPPED),
        "max(masked band mean z, shipped)": ("masked band mean z", SHIPPED),
        "max(masked band abs signed z, shipped)": ("masked band abs signed mean z", SHIPPED),
    }


def evaluate_masked(net, masks, cfg, ref_windows, dev, shipped: dict, group: int) -> dict:
    ref = masked_residuals(net, ref_windows, masks)
    resid = {k: masked_residuals(net, bench.window_features(w, cfg), masks) for k, w in dev.items()}
    z = {}
    for name, view in views(group).items():
        s_ref = view(ref, ref)
        centre, spread = np.median(s_ref), s_ref.std() + 1e-9
        z[name] = {k: (view(r, ref) - centre) / spread for k, r in resid.items()}
    z[SHIPPED] = shipped
    for name, parts in combos().items():
        z[name] = {k: np.max([z[p][k] for p in parts], axis=0) for k in resid}
    return z


def cell_table(z: dict) -> list[str]:
    """AUC per kind x level (pooled overall with its pAUC) and on the real broken propellers."""
    cells = [(k, lv) for k in bench.KINDS for lv in bench.LEVELS_DB]
    cols = ["overall", *[f"{k} {lv}" for k, lv in cells], "real"]
    out = ["| view | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, s in z.items():
        pooled = metrics.summary(s["clean"], np.concatenate([s[c] for c in cells]))
        row = [f"{pooled['auc']:.3f}/{pooled['pauc']:.2f}"]
        row += [f"{metrics.auc(s['clean'], s[c]):.3f}" for c in cells]
        row.append(f"{metrics.auc(s['normal'], s['anomalous']):.3f}")
        out.append(f"| {name} | " + " | ".join(row) + " |")
    return out


def tightness(net: MaskedBandNet, ref_windows: np.ndarray, ref: np.ndarray) -> str:
    """How well the net predicts a band's level over a window, on normal training windows: the
    spread of each band's mean signed residual over the spread of its mean level (the band-level
    oracle's unit); below 1 the prediction reads a steady shift better than normal variation."""
    level = net.standardise(torch.from_numpy(ref_windows)).numpy().mean(2)
    ratio = ref.mean(2).std(0) / level.std(0)
    q = np.percentile(ratio, [10, 50, 90])
    return (f"band level predicted to {q[1]:.2f} of its normal spread (median band; "
            f"10-90 % of bands {q[0]:.2f}-{q[2]:.2f})")


def cost(shipped_net, net, masks, windows: np.ndarray) -> str:
    """Seconds per window, one thread: the shipped net's forward against the masked copies'."""
    x = torch.from_numpy(windows)
    with torch.no_grad():
        t = time.perf_counter()
        shipped_net(x)
        a = (time.perf_counter() - t) / len(x)
    t = time.perf_counter()
    masked_residuals(net, windows, masks)
    b = (time.perf_counter() - t) / len(x)
    return (f"cost per window (1 thread): shipped {1e3 * a:.2f} ms, "
            f"masked ({len(masks)} copies) {1e3 * b:.2f} ms, {b / a:.0f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=bench.REPO.parent / "shared/data/machine")
    p.add_argument("--run", type=Path, required=True, help="sweep_anomaly's run folder (64 bands, defaults)")
    p.add_argument("--steps", type=int, default=20000, help="masked-band predictor steps")
    p.add_argument("--shipped-steps", type=int, default=4000)
    p.add_argument("--group", type=int, default=4, help="adjacent bands hidden together")
    p.add_argument("--hidden", type=int, default=96)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = FeatureConfig()
    train, _, val_normal, val_anom = bench.uav_split(args.data)
    shipped_net, cfg_lv, ref_windows = trained(cfg, args.run, args.shipped_steps, 96, 12, 0.02, args.seed,
                                               train)

    frames, _ = load_frames(train, cfg)
    cfg = with_levels(cfg, frames)
    assert cfg == cfg_lv
    torch.manual_seed(args.seed + 100)
    net = MaskedBandNet(cfg.bands, args.hidden)
    masks = group_masks(cfg.bands, args.group)
    ckpt = args.run / f"masked-g{args.group}-h{args.hidden}-s{args.steps}.pt"
    if ckpt.exists():
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)
        net.load_state_dict(saved["model"])
        info = saved["training"]
    else:
        stats = torch.from_numpy(WindowSampler(frames, cfg, args.seed).batch(STATS_WINDOWS))
        net.mean.copy_(stats.mean(dim=(0, 2), keepdim=True))  # as _set_band_stats
        net.std.copy_(stats.std(dim=(0, 2), keepdim=True).clamp(min=0.5))
        print(f"masked-band predictor: {sum(q.numel() for q in net.parameters()):,} parameters, "
              f"{len(masks)} groups of {args.group} bands", flush=True)
        info = train_masked(net, WindowSampler(frames, cfg, args.seed + 10), masks, args.steps, args.batch,
                            args.lr, args.seed)
        torch.save({"model": net.state_dict(), "training": info}, ckpt)
    net.eval()
    assert ref_windows.shape[0] == SCORE_WINDOWS

    clean, faulty = bench.injected([bench.load(f) for f in val_normal], DEV_SEED)
    dev = {"clean": clean, "normal": clean,
           "anomalous": bench.scale(np.concatenate([bench.windows_of(bench.load(f))[0] for f in val_anom]))}
    dev |= faulty
    shipped = evaluate(shipped_net, cfg, ref_windows, dev)[SHIPPED]
    z = evaluate_masked(net, masks, cfg, ref_windows, dev, shipped, args.group)
    lines = [f"masked-band predictor: {info}", cost(shipped_net, net, masks, ref_windows[:256]),
             tightness(net, ref_windows, masked_residuals(net, ref_windows, masks)), ""]
    lines += cell_table(z)
    (args.run / f"masked-g{args.group}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
