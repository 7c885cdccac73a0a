"""Is a candidate really better than the baseline on the dev mix, or is the difference noise?

Scores both on the same seeded mixtures (streamae.evaluation.make_test_mix) and reports the mean
per-mixture difference with a 95 % paired bootstrap interval, overall and at each SNR. Differences
of a few hundredths of PESQ-WB decide between models here; this says which of them are real.

    python scripts/bench/compare_denoisers.py models/denoiser-v2.onnx runs/candidate.onnx \
        --speech ../shared/data/speech/dev --noise ../shared/data/noise/dev
"""
from __future__ import annotations

import argparse

import numpy as np

from streamae import Denoiser
from streamae.audio import SAMPLE_RATE
from streamae.evaluation import format_interval, make_test_mix, paired_interval, quality_scores

METRICS = ("pesq_wb", "stoi", "si_sdr")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("baseline")
    p.add_argument("candidates", nargs="+")
    p.add_argument("--speech", required=True)
    p.add_argument("--noise", required=True)
    p.add_argument("--resamples", type=int, default=10000)
    args = p.parse_args()
    mixes = make_test_mix(args.speech, args.noise)
    snrs = np.array([m.snr_db for m in mixes])
    base = scores(args.baseline, mixes)
    for candidate in args.candidates:
        candidate_scores = scores(candidate, mixes)
        diff = {k: candidate_scores[k] - base[k] for k in METRICS}
        print(f"{candidate} minus {args.baseline}, {len(mixes)} mixtures (mean [95 % interval]):")
        groups = [("all", np.ones(len(mixes), bool))] + [(f"{s:g} dB", snrs == s) for s in sorted(set(snrs))]
        for name, pick in groups:
            cells = [
                f"{k} {format_interval(*paired_interval(diff[k][pick], args.resamples))}" for k in METRICS
            ]
            print(f"  {name:>6}: " + "  ".join(cells))


def scores(model: str, mixes) -> dict[str, np.ndarray]:
    d = Denoiser(model, threads=1)
    rows = [quality_scores(d.process(m.noisy, SAMPLE_RATE), m.clean) for m in mixes]
    return {k: np.array([r[k] for r in rows]) for k in METRICS}


if __name__ == "__main__":
    main()
