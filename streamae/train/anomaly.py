"""Train the anomaly monitor's sparse convolutional autoencoder on normal sound only.

    streamae anomaly train --normal DIR [--val-normal DIR] -o MODEL.onnx

Features come from `streamae.anomaly.features` (the runtime's own front end); the model
learns to reconstruct normal log-mel windows through a narrow, L1-penalised code, so
sounds it never heard reconstruct badly. Training is resumable from its run folder; the
exported graph is calibrated through the runtime scorer before its threshold is stored.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from ..anomaly.alerts import AlertPolicy
from ..anomaly.calibrate import DEFAULT_FALSE_ALERTS_PER_HOUR, DEFAULT_MARGIN, calibrate
from ..anomaly.features import (
    DEFAULT_STEP_DB,
    SILENCE_BELOW_MEDIAN_DB,
    FeatureConfig,
    file_frames,
    frame_levels,
    level_change,
    running_starts,
    window_at,
)
from ..anomaly.scorer import DEFAULT_HOP_SECONDS, AnomalyModel
from ..audio import audio_files
from ..errors import StreamaeError
from .export import OPSET, _save
from .loop import learning_rate, progress, save_checkpoint
from .options import check_budget

STATS_WINDOWS = 2000  # random windows that set the per-band mean and spread
SCORE_WINDOWS = 1000  # random training windows that set each score view's centre and spread
WARMUP_STEPS = 100
TOP_FRAMES_FRACTION = (
    0.05  # the frame view averages the worst 5 % of a window's frames (6 of 122, 0.1 s: a short rattle burst)
)


SCORE_DESCRIPTION = (
    "squared reconstruction error of the per-band standardised, level-normalised log-mel window, "
    "seen two ways: the worst band's mean over the window (each band's mean minus its median on normal "
    "training windows, over its standard deviation there), and the mean over bands of the worst 5 % "
    "of frames; each minus its median on normal training windows, over its standard deviation there; "
    "the window score is the larger; per file: the alert level, the highest threshold at which the "
    "monitor's k-of-n rule would fire (`streamae anomaly score`)"
)


@dataclass(frozen=True)
class NetConfig:
    bands: int = FeatureConfig.bands  # the network's input is one feature window
    window_frames: int = FeatureConfig.window_frames
    hidden: int = 96
    code: int = 12  # channels per 2 frames: 128 numbers in, 12 through the code

    @classmethod
    def from_dict(cls, d: dict) -> "NetConfig":
        return cls(**d)


class SparseConvAE(nn.Module):
    """Log-mel window [B, bands, frames] -> per-frame squared reconstruction error.

    Bands are channels and convolutions run over time; the code has half the frames and
    `code` << bands channels (undercomplete) behind a ReLU, whose zeros the L1 penalty
    multiplies. Inputs are standardised per band with training statistics kept in the graph.
    """

    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.config = cfg
        b, h, c = cfg.bands, cfg.hidden, cfg.code
        self.register_buffer("mean", torch.zeros(1, b, 1))
        self.register_buffer("std", torch.ones(1, b, 1))
        self.register_buffer("band_center", torch.zeros(b))
        self.register_buffer("band_scale", torch.ones(b))
        self.register_buffer("score_center", torch.zeros(2))
        self.register_buffer("score_scale", torch.ones(2))
        self.encoder = nn.Sequential(
            nn.Conv1d(b, h, 5, padding=2), nn.ReLU(),
            nn.Conv1d(h, h, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv1d(h, c, 3, padding=1), nn.ReLU())
        self.decoder = nn.Sequential(
            nn.ConvTranspose1d(c, h, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(h, h, 5, padding=2), nn.ReLU(),
            nn.Conv1d(h, b, 5, padding=2))

    def forward_with_code(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = (x - self.mean) / self.std
        code = self.encoder(z)
        frame_error = (self.decoder(code) - z).pow(2).mean(dim=1)
        return frame_error, code

    def views(self, error: torch.Tensor) -> torch.Tensor:
        """Squared error [B, bands, frames] -> the two ways a fault shows, [B, 2]:
        the worst band's mean over the window (a whine or a resonance lives in a few bands all
        the time), each band in units of its own spread on normal windows (`set_score_scale`),
        and the mean of the worst `top_frames` frames over all bands (a rattle or a knock is
        broadband but brief). Without the per-band units the band view watched the bands the
        model always reconstructs worst; with them a quiet band that is always well reconstructed
        speaks up (benchmark dev faults: overall AUC 0.699 -> 0.724 for this view alone)."""
        band = ((error.mean(dim=2) - self.band_center) / self.band_scale).amax(dim=1)
        frame = torch.topk(error.mean(dim=1), self.top_frames, dim=1).values.mean(dim=1)
        return torch.stack([band, frame], dim=1)

    @property
    def top_frames(self) -> int:
        return max(1, round(self.config.window_frames * TOP_FRAMES_FRACTION))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (window score [B], frame error [B, frames]); the runtime reads `score`.

        The score is the larger of the two views (see `views`), each in units of its own
        spread on normal training windows (`set_score_scale`), so neither dominates. On the
        UAV benchmark's development faults (injected into val/normal, not the test flights),
        the worst band alone found tones and clicks but missed rattle (AUC 0.763), the worst
        frames alone the reverse (tone 0.644); the larger of the two kept the best of both
        (rattle 0.841, tone 0.741; overall pAUC 0.339 -> 0.370). 5 % of frames rather than 10 %
        was a little better there on every view but speed (overall pAUC 0.367 -> 0.373).
        """
        z = (x - self.mean) / self.std
        error = (self.decoder(self.encoder(z)) - z).pow(2)
        score = ((self.views(error) - self.score_center) / self.score_scale).amax(dim=1)
        return score, error.mean(dim=1)

    @torch.no_grad()
    def set_score_scale(self, windows: torch.Tensor, batch: int = 256) -> None:
        """Centre (median) and spread (std) of each band's mean error, then of each view, on
        normal windows."""
        self.eval()
        error = torch.cat(
            [
                (self.decoder(self.encoder(w)) - w).pow(2)
                for w in (
                    (windows[i : i + batch] - self.mean) / self.std for i in range(0, len(windows), batch)
                )
            ]
        )
        band = error.mean(dim=2)
        self.band_center.copy_(band.median(dim=0).values)
        self.band_scale.copy_(band.std(dim=0).clamp(min=1e-6))
        z = self.views(error)
        self.score_center.copy_(z.median(dim=0).values)
        self.score_scale.copy_(z.std(dim=0).clamp(min=1e-6))


class WindowSampler:
    """Random normalised windows from a set of files' log-mel frames, each window where the
    machine runs throughout (no frame below silence: what the runtime scores) equally likely."""

    def __init__(self, frames: list[np.ndarray], cfg: FeatureConfig, seed: int):
        self.frames, self.cfg = frames, cfg
        self.starts = [running_starts(f, cfg) for f in frames]
        counts = np.array([len(s) for s in self.starts])
        if counts.sum() == 0:
            raise StreamaeError("the normal audio has no window where the machine runs (all silence?)")
        self.p = counts / counts.sum()
        self.counts = counts
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> np.ndarray:
        files = self.rng.choice(len(self.frames), size=size, p=self.p)
        return np.stack(
            [window_at(self.frames[i], int(self.starts[i][self.rng.integers(self.counts[i])]), self.cfg)
             for i in files]
        )


def load_frames(files: list[Path], cfg: FeatureConfig) -> tuple[list[np.ndarray], list[Path]]:
    """Log-mel frames of every file at least one window long (the others are reported, not used)."""
    frames, used = [], []
    for f in files:
        x = file_frames(f, cfg)
        if x.shape[1] >= cfg.window_frames:
            frames.append(x)
            used.append(f)
        else:
            print(f"skipping {f}: shorter than one {cfg.window_seconds:.2f} s window", file=sys.stderr)
    if not frames:
        raise StreamaeError(f"no normal file is at least one {cfg.window_seconds:.2f} s window long")
    return frames, used


def split_files(
    normal: list[Path], val_normal: list[Path] | None, fraction: float, seed: int
) -> tuple[list[Path], list[Path]]:
    """(train, calibration) files: the given validation set, or a seeded `fraction` held out of `normal`."""
    if val_normal:
        return normal, val_normal
    if len(normal) < 2:
        raise StreamaeError(
            "need at least two normal files to hold one out for the threshold (or pass --val-normal)"
        )
    order = np.random.default_rng(seed).permutation(len(normal))
    n_val = min(len(normal) - 1, max(1, round(fraction * len(normal))))
    held = set(order[:n_val].tolist())
    return [f for i, f in enumerate(normal) if i not in held], [f for i, f in enumerate(normal) if i in held]


def main(args: argparse.Namespace) -> Path:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.output)
    if out.suffix != ".onnx":
        raise StreamaeError("the model path must end in .onnx", out)
    check_budget(args.minutes, args.steps)
    percentile = getattr(args, "percentile", None)
    if percentile is not None and not 0 < percentile <= 100:
        raise StreamaeError(f"--percentile must be in (0, 100], got {percentile}")
    rate = getattr(args, "false_alerts_per_hour", DEFAULT_FALSE_ALERTS_PER_HOUR)
    if not rate > 0:
        raise StreamaeError(f"--false-alerts-per-hour must be > 0, got {rate}")
    policy = AlertPolicy(getattr(args, "k", AlertPolicy.k), getattr(args, "n", AlertPolicy.n))
    if not out.parent.is_dir():
        raise StreamaeError("output folder does not exist", out.parent)
    run_dir = Path(args.run_dir or Path("runs") / f"anomaly-{out.stem}")
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "checkpoint.pt"
    resume = ckpt_path.exists() and not args.fresh
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False) if resume else None

    norm = getattr(args, "norm", "smooth")
    feats = FeatureConfig.from_dict(ckpt["features"]) if ckpt else _features_for(args.window_seconds, norm)
    train_files, val_files = split_files(
        audio_files(args.normal),
        audio_files(args.val_normal) if args.val_normal else None,
        args.val_fraction,
        args.seed,
    )
    t0 = time.time()
    frames, train_files = load_frames(train_files, feats)
    if ckpt is None:
        feats = with_levels(feats, frames)
    hours = sum(f.shape[1] for f in frames) * feats.hop / feats.sample_rate / 3600
    print(
        f"data: {len(train_files)} normal files, {hours * 60:.1f} min (features in {time.time() - t0:.0f} "
        "s); "
        f"{len(val_files)} held-out files for the threshold",
        flush=True,
    )

    net_cfg = (
        NetConfig.from_dict(ckpt["net"])
        if ckpt
        else NetConfig(feats.bands, feats.window_frames, args.hidden, args.code)
    )
    net = SparseConvAE(net_cfg)
    sampler = WindowSampler(frames, feats, args.seed)
    if ckpt is None:
        _set_band_stats(net, sampler.batch(STATS_WINDOWS))
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    step, elapsed = 0, 0.0
    if ckpt is not None:
        net.load_state_dict(
            {**net.state_dict(), **ckpt["model"]}
        )  # checkpoints from before the score buffers
        opt.load_state_dict(ckpt["optimizer"])
        step, elapsed = ckpt["step"], ckpt["elapsed"]
        sampler.rng = np.random.default_rng(args.seed + step)
        print(f"resumed {ckpt_path} at step {step}, {elapsed / 60:.1f} min", flush=True)
    params = sum(p.numel() for p in net.parameters())
    print(
        f"model: sparse conv autoencoder, {params:,} parameters, {feats.window_seconds:.2f} s windows, "
        f"code {net_cfg.code} channels x {feats.window_frames // 2} frames, L1 weight {args.sparsity}",
        flush=True,
    )

    step, elapsed, loss_log = _train(net, opt, sampler, args, step, elapsed, ckpt_path, feats)
    net.set_score_scale(torch.from_numpy(WindowSampler(frames, feats, args.seed + 2).batch(SCORE_WINDOWS)))
    _save_checkpoint(ckpt_path, net, opt, step, elapsed, feats)
    probe = torch.from_numpy(WindowSampler(frames, feats, args.seed + 1).batch(512))
    sparsity = code_sparsity(net, probe)
    training = {
        "normal": [str(p) for p in args.normal],
        "files": len(train_files),
        "hours": round(hours, 3),
        "steps": step,
        "minutes": round(elapsed / 60, 2),
        "batch": args.batch,
        "lr": args.lr,
        "sparsity_weight": args.sparsity,
        "final_loss": loss_log,
        "seed": args.seed,
        "parameters": params,
    }
    return export(net, feats, out, training, sparsity, val_files,
                  dict(percentile=percentile, policy=policy, false_alerts_per_hour=rate,
                       margin=getattr(args, "margin", DEFAULT_MARGIN),
                       hop_seconds=getattr(args, "hop", DEFAULT_HOP_SECONDS)))


def with_levels(feats: FeatureConfig, frames: list[np.ndarray]) -> FeatureConfig:
    """The normal audio's median frame level (frames above the default silence floor), silence
    SILENCE_BELOW_MEDIAN_DB under it (a machine turned 20 dB down still runs), and the gain-step
    and ramp gates: each 3 dB over the largest abrupt step / trend in a window (`level_change`,
    99.9th percentile) of the normal running audio, at least DEFAULT_STEP_DB, so a machine whose
    level swings by itself (a drone taking off) is still scored."""
    per_file = [frame_levels(f, feats) for f in frames]
    levels = np.concatenate(per_file)
    heard = levels[levels > feats.silence_db]
    median = float(np.median(heard if len(heard) else levels))
    silence = median - SILENCE_BELOW_MEDIAN_DB
    w = feats.window_frames
    changes = np.array([level_change(lv[i:i + w]) for lv in per_file for i in range(0, len(lv) - w + 1, 8)
                        if lv[i:i + w].min() > silence]).reshape(-1, 2)

    def gate(values: np.ndarray) -> float:
        top = float(np.percentile(values, 99.9)) + 3.0 if len(values) else 0.0
        return round(max(DEFAULT_STEP_DB, top), 2)

    return dataclasses.replace(feats, normal_level_db=round(median, 2), silence_db=round(silence, 2),
                               step_db=gate(changes[:, 0]), ramp_db=gate(changes[:, 1]))


def _features_for(window_seconds: float, norm: str = "smooth") -> FeatureConfig:
    """Default features with the window nearest `window_seconds`, rounded to an even frame count
    (the code halves the frames and the decoder doubles them back)."""
    base = FeatureConfig()
    frames = 1 + max(0, round(window_seconds * base.sample_rate) - base.n_fft) // base.hop
    return FeatureConfig(window_frames=max(4, frames // 2 * 2), norm=norm)


def _set_band_stats(net: SparseConvAE, windows: np.ndarray) -> None:
    x = torch.from_numpy(windows)
    net.mean.copy_(x.mean(dim=(0, 2), keepdim=True)[0:1])
    net.std.copy_(x.std(dim=(0, 2), keepdim=True).clamp(min=0.5)[0:1])


def _train(net: SparseConvAE, opt, sampler: WindowSampler, args, step: int, elapsed: float, ckpt_path: Path,
           feats: FeatureConfig) -> tuple[int, float, dict]:
    start = time.time() - elapsed
    last_ckpt = last_log = time.time()
    recent: list[tuple[float, float]] = []
    net.train()
    while True:
        elapsed = time.time() - start
        spent = progress(elapsed, args.minutes, step, args.steps)
        if spent >= 1.0:
            break
        for g in opt.param_groups:
            g["lr"] = learning_rate(args.lr, step, spent, WARMUP_STEPS)
        frame_error, code = net.forward_with_code(torch.from_numpy(sampler.batch(args.batch)))
        mse, l1 = frame_error.mean(), code.abs().mean()
        loss = mse + args.sparsity * l1
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        step += 1
        recent.append((mse.item(), l1.item()))
        if time.time() - last_log > args.log_seconds:
            m = np.mean(recent[-50:], axis=0)
            eta = (1 - spent) / max(spent, 1e-9) * elapsed
            print(
                f"{_bar(spent)} step {step} | {elapsed / 60:4.1f} min, ~{eta / 60:.1f} min left | "
                f"reconstruction {m[0]:.4f} | code L1 {m[1]:.4f} | zeros "
                f"{float((code == 0).float().mean()):.2f}",
                flush=True,
            )
            last_log = time.time()
        if time.time() - last_ckpt > args.checkpoint_minutes * 60:
            _save_checkpoint(ckpt_path, net, opt, step, time.time() - start, feats)
            last_ckpt = time.time()
    elapsed = time.time() - start
    _save_checkpoint(ckpt_path, net, opt, step, elapsed, feats)
    m = np.mean(recent[-50:], axis=0) if recent else (float("nan"), float("nan"))
    return step, elapsed, {"reconstruction": round(float(m[0]), 5), "code_l1": round(float(m[1]), 5)}


def _bar(progress: float, width: int = 20) -> str:
    done = int(round(min(progress, 1.0) * width))
    return f"[{'#' * done}{'.' * (width - done)}] {100 * min(progress, 1.0):3.0f}%"


def _save_checkpoint(
    path: Path, net: SparseConvAE, opt, step: int, elapsed: float, feats: FeatureConfig
) -> None:
    save_checkpoint(
        {
            "model": net.state_dict(),
            "optimizer": opt.state_dict(),
            "step": step,
            "elapsed": elapsed,
            "net": asdict(net.config),
            "features": feats.to_dict(),
        },
        path,
    )


@torch.no_grad()
def code_sparsity(net: SparseConvAE, windows: torch.Tensor) -> dict:
    """How sparse the code is on normal windows (level-free: the features are normalised)."""
    net.eval()
    _, code = net.forward_with_code(windows)
    frame_max = code.amax(dim=1, keepdim=True).clamp(min=1e-12)
    return {"windows": int(windows.shape[0]), "zero_fraction": round(float((code == 0).float().mean()), 4),
            "below_1pct_of_frame_max": round(float((code < 0.01 * frame_max).float().mean()), 4),
            "active_channels_per_frame": round(float((code > 0).float().sum(dim=1).mean()), 2),
            "code_channels": net.config.code, "mean_abs_code": round(float(code.abs().mean()), 4)}


def export(net: SparseConvAE, feats: FeatureConfig, path: Path, training: dict, sparsity: dict,
           val_files: list[Path], calibration: dict) -> Path:
    """Export the graph, calibrate its threshold through the runtime scorer, store both, write the card."""
    net = net.eval()
    meta = {"streamae.kind": "anomaly", "streamae.features": json.dumps(feats.to_dict()),
            "streamae.net": json.dumps(asdict(net.config)), "streamae.training": json.dumps(training),
            "streamae.sparsity": json.dumps(sparsity),
            "streamae.score": SCORE_DESCRIPTION}
    tmp = path.with_name(f".{path.name}.uncalibrated")
    batch = torch.export.Dim("batch", min=1, max=4096)
    example = torch.zeros(2, feats.bands, feats.window_frames)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # torchvision-not-installed chatter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(net, (example,), dynamo=True, external_data=False, opset_version=OPSET,
                                 input_names=["features"], output_names=["score", "frame_error"],
                                 dynamic_shapes=({0: batch},), verbose=False)
    _save(prog, tmp, meta)
    try:
        threshold, how = calibrate(AnomalyModel(tmp), val_files, **calibration)
        how["held_out"] = [str(f) for f in val_files]
        model = onnx.load(str(tmp))
        for key, value in {
            "streamae.threshold": json.dumps(threshold),
            "streamae.calibration": json.dumps(how),
        }.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    card = {
        "model": path.name,
        "kind": "anomaly",
        "threshold": threshold,
        "calibration": how,
        "features": feats.to_dict(),
        "net": asdict(net.config),
        "training": training,
        "sparsity": sparsity,
        "size_bytes": path.stat().st_size,
    }
    card_path = path.with_suffix(".json")
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(
        f"exported {path} ({path.stat().st_size / 1e6:.2f} MB) and {card_path}; threshold {threshold:.4f} "
        f"({how['method']}, {how['windows']} windows); code zeros {100 * sparsity['zero_fraction']:.0f} %",
        flush=True,
    )
    return path
