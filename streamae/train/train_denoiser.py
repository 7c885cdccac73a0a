"""Train the denoising autoencoder: resumable, time- or step-budgeted, then export to ONNX.

    streamae train denoiser --speech DIR --noise DIR [--rir DIR] --run-dir runs/x \
        --minutes 60 --export models/denoiser-v1.onnx
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..denoiser import step_graph_path
from ..errors import StreamaeError
from .config import DenoiserConfig, GTCRNConfig, config_from_dict
from .data import MixConfig, Mixer, load_corpus
from .grow import can_grow, grow
from .gtcrn import GTCRNet
from .loop import GracefulStop, learning_rate, progress, save_checkpoint
from .losses import intelligibility, multi_resolution_stft, over_suppression, si_sdr_db, snr_db
from .model import DenoiserNet, count_parameters
from .options import check_budget, check_clean_fraction, check_loss_weights, check_shape

WARMUP_STEPS = 300


def main(args: argparse.Namespace) -> Path | None:
    check_budget(args.minutes, args.steps)
    check_shape(args.deep_filter, args.phase_input, args.analysis_window)
    check_loss_weights(args)
    check_clean_fraction(args.clean_fraction)
    if args.export:
        step_graph_path(args.export)  # checks the name now, not after hours of training
    if args.init and not Path(args.init).is_file():
        raise StreamaeError("--init: no such file", args.init)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    run = Run.start(args, device)
    config = run.net.config
    sr = config.sample_rate
    t0 = time.time()
    clean = {} if args.clean_fraction is None else {"p_clean": args.clean_fraction}
    mix = MixConfig(sample_rate=sr, seconds=args.seconds, snr_low=args.snr[0], snr_high=args.snr[1], **clean)
    mixer = Mixer(load_corpus(args.speech, sr, 0.5), load_corpus(args.noise, sr, 0.2),
                  load_corpus(args.rir, sr) if args.rir else [], device, mix, seed=args.seed + run.step)
    print(
        f"data: {mixer.speech.samples / sr / 3600:.2f} h speech, {mixer.noise.samples / sr / 3600:.2f} h "
        "noise, "
        f"{len(mixer.rirs)} RIRs (loaded in {time.time() - t0:.0f} s)",
        flush=True,
    )
    dev = _dev_batch(args, device, mix) if args.dev_speech and args.dev_noise else None

    skipped, stopped = _train(run, mixer, dev, args)
    if stopped:
        print(
            f"stopped ({stopped}) at step {run.step}, {run.elapsed / 60:.1f} of {args.minutes:g} min: "
            "checkpoint in "
            f"{run.dir}; the same command resumes it",
            flush=True,
        )
        if stopped != "--stop-after":
            raise KeyboardInterrupt
        return None
    summary = {
        "steps": run.step,
        "skipped_batches": skipped,
        "minutes": round(run.elapsed / 60, 1),
        "device": str(device),
        "batch": args.batch,
        "crop_seconds": args.seconds,
        "snr_db": list(args.snr),
        "sparsity_weight": args.sparsity,
    }
    if dev is not None:
        summary["dev_si_sdr_improvement_db"] = round(_dev_improvement(run.net, dev), 2)
    print("done: " + json.dumps(summary), flush=True)
    (run.dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if args.export:
        probe = dev[0] if dev is not None else mixer.batch(16)[0]
        return export(run.net, probe, args.export, summary)
    return None


@dataclass
class Run:
    """A training run's model, optimizer and position, from its checkpoint, --init, or fresh."""
    dir: Path
    net: DenoiserNet | GTCRNet
    opt: torch.optim.Optimizer
    step: int = 0
    elapsed: float = 0.0  # training seconds so far, across resumes

    @classmethod
    def start(cls, args: argparse.Namespace, device: torch.device) -> "Run":
        run_dir = Path(args.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt_path = run_dir / "checkpoint.pt"
        config = DenoiserConfig(
            code=args.code,
            bottleneck=args.bottleneck,
            hidden=args.hidden,
            dilations=tuple(args.dilations),
            analysis_window=args.analysis_window,
            recurrent=args.recurrent,
            phase_input=args.phase_input,
            deep_filter=args.deep_filter,
        )
        resume = ckpt_path.exists() and not args.fresh
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False) if resume else None
        init = (
            torch.load(args.init, map_location="cpu", weights_only=False)
            if args.init and not resume
            else None
        )
        if ckpt is not None:
            config = config_from_dict(ckpt["config"])
        elif init is not None and isinstance(config_from_dict(init["config"]), GTCRNConfig):
            config = _gtcrn_frame_from_init(init, args)
        elif init is not None:
            config = _shape_from_init(init, config, args)
        net = build_net(config).to(device)
        if init is not None:
            net.load_state_dict(init["model"])
            print(
                f"initialised from {args.init} (its step {init.get('step', '?')}); new optimizer and "
                "schedule",
                flush=True,
            )
        opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
        run = cls(run_dir, net, opt)
        if ckpt is not None:
            net.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            run.step, run.elapsed = ckpt["step"], ckpt["elapsed"]
            print(f"resumed {ckpt_path} at step {run.step}, {run.elapsed / 60:.1f} min", flush=True)
        print(
            f"model: {count_parameters(net):,} parameters, latency {config.window - 1} samples; device "
            f"{device}",
            flush=True,
        )
        return run

    def save(self) -> None:
        state = self.net.state_dict()
        if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
            raise RuntimeError(
                f"model diverged (non-finite weights) at step {self.step}; keeping the previous checkpoint"
            )
        save_checkpoint(
            {
                "model": state,
                "optimizer": self.opt.state_dict(),
                "step": self.step,
                "elapsed": self.elapsed,
                "config": self.net.config.to_dict(),
            },
            self.dir / "checkpoint.pt",
        )


def _train(run: Run, mixer: Mixer, dev, args: argparse.Namespace) -> tuple[int, str | None]:
    """Train until the budget is spent or a stop is asked for, logging and checkpointing;
    -> (batches skipped as non-finite, why it stopped early or None)."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    net, opt = run.net, run.opt
    start, last_ckpt, last_log = time.time() - run.elapsed, time.time(), time.time()
    logs: list[float] = []
    skipped, stopped = 0, None
    net.train()
    with GracefulStop(args.stop_after) as stop:
        while True:
            run.elapsed = time.time() - start
            spent = progress(run.elapsed, args.minutes, run.step, args.steps)
            if spent >= 1.0 or (stopped := stop.reason):
                break
            for g in opt.param_groups:
                g["lr"] = learning_rate(args.lr, run.step, spent, WARMUP_STEPS)
            parts = _step(run, mixer.batch(args.batch), args, skipped)
            if parts is None:
                skipped += 1
                continue
            logs.append(-parts["snr"])
            if run.step % args.log_every == 0:
                rate = args.log_every / (time.time() - last_log)
                last_log = time.time()
                recent = logs[-args.log_every:]
                extras = f"over {parts['over']:.4f} | " if "over" in parts else ""
                extras += f"1-stoi {parts['stoi']:.3f} | " if "stoi" in parts else ""
                line = (
                    f"step {run.step} | {run.elapsed / 60:5.1f}/{args.minutes:.0f} min | train SNR "
                    f"{sum(recent) / max(len(recent), 1):6.2f} dB | stft {parts['stft']:.3f} | code "
                    f"{parts['code']:.3f} | "
                    f"{extras}lr {opt.param_groups[0]['lr']:.2e} | {rate:.1f} it/s"
                )
                if skipped:
                    line += f" | {skipped} non-finite batches skipped"
                if dev is not None and run.step % (args.log_every * 10) == 0:
                    line += f" | dev SI-SDR +{_dev_improvement(net, dev):.2f} dB"
                print(line, flush=True)
            if time.time() - last_ckpt > args.checkpoint_minutes * 60:
                run.elapsed = time.time() - start
                run.save()
                last_ckpt = time.time()
    run.elapsed = time.time() - start
    run.save()
    return skipped, stopped


def _step(
    run: Run, batch: tuple[torch.Tensor, torch.Tensor], args: argparse.Namespace, skipped: int
) -> dict | None:
    """One optimizer step on (noisy, clean) -> the loss parts, or None for a non-finite batch,
    which is skipped: one bad batch must not poison the weights (or the checkpoint)."""
    noisy, clean = batch
    if not bool(torch.isfinite(noisy).all() and torch.isfinite(clean).all()):
        return None  # checked before the forward pass, which would update BatchNorm statistics
    loss, parts = _loss(run.net, noisy, clean, args)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(run.net.parameters(), 5.0)
    if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
        if skipped < 3:  # kept for diagnosis (the known cause, NaN from complex abs(), is fixed in losses.py)
            torch.save({"noisy": noisy.cpu(), "clean": clean.cpu(), "step": run.step, **parts,
                        "grad_norm": grad_norm.item()}, run.dir / f"nonfinite-{skipped + 1}.pt")
        return None
    run.opt.step()
    run.step += 1
    return parts


def _loss(
    net: DenoiserNet, noisy: torch.Tensor, clean: torch.Tensor, args: argparse.Namespace
) -> tuple[torch.Tensor, dict]:
    """-SNR + stft_weight * multi-resolution STFT + sparsity * L1 of the code (relative to the input RMS)
    [+ suppression_weight * over-suppression] [+ stoi_weight * (1 - STOI)]."""
    estimate, code = net.forward_with_code(noisy)
    loss_snr = -snr_db(estimate, clean).mean()
    loss_stft = multi_resolution_stft(estimate, clean, noisy)
    rms = noisy.pow(2).mean(-1).sqrt()[:, None, None] + 1e-5
    loss_code = (code.abs() / rms).mean()
    loss = loss_snr + args.stft_weight * loss_stft + args.sparsity * loss_code
    parts = {"snr": loss_snr.item(), "stft": loss_stft.item(), "code": loss_code.item()}
    if args.suppression_weight:
        loss_over = over_suppression(estimate, clean, noisy)
        loss = loss + args.suppression_weight * loss_over
        parts["over"] = loss_over.item()
    if args.stoi_weight:
        loss_stoi = intelligibility(estimate, clean, bands=args.stoi_bands)
        loss = loss + args.stoi_weight * loss_stoi
        parts["stoi"] = loss_stoi.item()
    return loss, parts


def export(net: DenoiserNet, probe: torch.Tensor, path: str | Path, training: dict) -> Path:
    """Export both graphs, with the training summary and the measured code sparsity."""
    from .export import code_sparsity, export_denoiser  # onnx is only needed here

    net = net.cpu().eval()
    sparsity = code_sparsity(net, probe.cpu())
    paths = export_denoiser(
        net, path, {"training": training, "sparsity": sparsity, "parameters": count_parameters(net)}
    )
    print(f"exported {paths[0]} and {paths[1]}; code sparsity {json.dumps(sparsity)}", flush=True)
    return paths[0]


def build_net(config: DenoiserConfig | GTCRNConfig) -> DenoiserNet | GTCRNet:
    """The denoiser of the family `config` describes, freshly initialised."""
    return GTCRNet(config) if isinstance(config, GTCRNConfig) else DenoiserNet(config)


def _gtcrn_frame_from_init(init: dict, args: argparse.Namespace) -> GTCRNConfig:
    """A GTCRN's weights fit any frame: --window/--hop (a shorter synthesis window, an asymmetric
    analysis one) and --temporal-dilations may change it; the STFT bases follow the frame."""
    config = GTCRNConfig.from_dict(init["config"])
    changes = {k: v for k, v in (("window", args.window), ("hop", args.hop),
                                 ("dilations", tuple(args.temporal_dilations or ()))) if v}
    if not changes:
        return config
    config = dataclasses.replace(config, **changes)
    fresh = GTCRNet(config).state_dict()
    init["model"] = {**init["model"], **{k: fresh[k] for k in ("analysis_basis", "synthesis_basis")}}
    print(f"GTCRN weights on a new frame: window {config.window}, hop {config.hop}, dilations "
          f"{list(config.dilations)} (latency {config.window - 1} samples)", flush=True)
    return config


def _shape_from_init(init: dict, asked: DenoiserConfig, args: argparse.Namespace) -> DenoiserConfig:
    """The initial weights fix the shape; options may only widen its GRU or add the phase input or a
    deep filter (init's weights then grow in place, computing what they did). No shape options at all
    means the init's shape."""
    config = DenoiserConfig.from_dict(init["config"])
    if asked in (DenoiserConfig(), config):
        return config
    if not can_grow(config, asked):
        raise StreamaeError(
            f"--init fixes the architecture (only a GRU's --hidden may grow, and --phase-input "
            f"or a --deep-filter be added), and its config "
            f"{config.to_dict()} differs from the one these options ask for, {asked.to_dict()}",
            args.init,
        )
    init["model"] = grow(init["model"], config, asked, seed=args.seed)
    if asked.hidden > config.hidden:
        print(
            f"widened the GRU layers from {config.hidden} to {asked.hidden} units; the new ones start "
            "silent, "
            "so the output is unchanged",
            flush=True,
        )
    if asked.phase_input > config.phase_input:
        print("added the phase input; it starts silent, so the output is unchanged", flush=True)
    if asked.deep_filter > config.deep_filter:
        print(
            f"added a deep filter of {asked.deep_filter} taps; it starts silent, so the output is unchanged",
            flush=True,
        )
    return asked


def _dev_batch(args, device, mix: MixConfig) -> tuple[torch.Tensor, torch.Tensor]:
    sr = mix.sample_rate
    dev_mix = MixConfig(**{**mix.__dict__, "snr_low": -5.0, "snr_high": 15.0, "p_clean": 0.0, "p_reverb": 0.0,
                           "p_gap": 0.0, "p_second_noise": 0.0, "p_synthetic": 0.0})
    m = Mixer(
        load_corpus(args.dev_speech, sr, 0.5),
        load_corpus(args.dev_noise, sr, 0.2),
        [],
        device,
        dev_mix,
        seed=1234,
    )
    return m.batch(32)


@torch.no_grad()
def _dev_improvement(net: DenoiserNet, dev) -> float:
    noisy, clean = dev
    net.eval()
    est = net(noisy)
    net.train()
    return (si_sdr_db(est, clean) - si_sdr_db(noisy, clean)).mean().item()


if __name__ == "__main__":  # same as `streamae train denoiser ...`, whose CLI reports errors and stops
    from ..cli import main as cli_main

    sys.exit(cli_main(["train", "denoiser", *sys.argv[1:]]))
