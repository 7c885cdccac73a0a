"""How far could a real-valued mask go on each front end? The oracle answer, on the dev mix.

A mask network can at best learn the ideal amplitude mask min(|S| / |X|, 1) of its own
transform (S: clean speech, X: the mixture). Scoring that oracle for several asymmetric STFTs
(analysis window / 10 ms synthesis window, 5 ms hop, all with denoiser-v1's 9.9 ms latency)
shows how much a front end caps quality before any training.

    python scripts/research/oracle_mask.py --speech ../shared/data/speech/dev --noise ../shared/data/noise/dev
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F

from streamae.audio import SAMPLE_RATE
from streamae.evaluation import SNRS_DB, make_test_mix, quality_scores
from streamae.train.model import asymmetric_stft

SYNTHESIS, HOP = 160, 80


def oracle(noisy: np.ndarray, clean: np.ndarray, analysis: int) -> np.ndarray:
    """Apply the clean/mixture amplitude ratio, capped at one, through the analysis/synthesis pair."""
    fwd, inv = asymmetric_stft(analysis, SYNTHESIS)
    pad = analysis - HOP  # causal: each frame ends on its newest sample, as in the model
    def frames(x):
        return F.conv1d(
            F.pad(torch.from_numpy(x).float()[None, None], (pad, 2 * HOP)), fwd, stride=HOP
        )
    X, S = frames(noisy), frames(clean)
    def magnitude(z):
        return z.view(2, -1, z.shape[-1]).pow(2).sum(0).sqrt()
    mask = torch.clamp(magnitude(S) / (magnitude(X) + 1e-9), max=1.0).repeat(2, 1)[None]
    y = F.conv_transpose1d(X * mask, inv, stride=HOP)[0, 0]
    start = pad - (analysis - SYNTHESIS)  # the synthesis window covers each frame's last 160 samples
    return y[start:start + len(noisy)].numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speech", required=True)
    p.add_argument("--noise", required=True)
    p.add_argument("--analysis", type=int, nargs="+", default=[160, 320, 512, 1024],
                   help="analysis windows in samples (160: a symmetric 10 ms sqrt-Hann STFT)")
    args = p.parse_args()
    mixes = make_test_mix(args.speech, args.noise)
    results = {}
    for analysis in args.analysis:
        rows = [
            dict(quality_scores(oracle(m.noisy, m.clean, analysis), m.clean), snr=m.snr_db) for m in mixes
        ]
        mean = {k: float(np.mean([r[k] for r in rows])) for k in ("pesq_wb", "stoi", "si_sdr")}
        by_snr = {snr: float(np.mean([r["si_sdr"] for r in rows if r["snr"] == snr])) for snr in SNRS_DB}
        results[analysis] = {**mean, "si_sdr_by_snr": by_snr}
        print(
            f"analysis {analysis:5d} ({1000 * analysis / SAMPLE_RATE:5.1f} ms): PESQ-WB "
            f"{mean['pesq_wb']:.2f}  "
            f"STOI {mean['stoi']:.3f}  SI-SDR {mean['si_sdr']:5.2f} dB  by SNR "
            + " / ".join(f"{v:.1f}" for v in by_snr.values()),
            flush=True,
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
