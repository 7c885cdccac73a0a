"""`streamae anomaly eval`: how well a model separates labelled normal and anomalous recordings."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..audio import audio_files
from ..errors import StreamaeError
from . import metrics
from .alerts import AlertPolicy
from .scorer import DEFAULT_HOP_SECONDS, AnomalyModel, FileScore


def evaluate(model: AnomalyModel, normal: list[str | Path], anomalous: list[str | Path],
             hop_seconds: float = DEFAULT_HOP_SECONDS,
             policy: AlertPolicy = AlertPolicy()) -> dict:
    """File-level (score: the alert level, as `anomaly score` reports it) and window-level AUC,
    pAUC (FPR <= 0.1), TPR at 1 % FPR, and the confusion at the model's threshold."""
    scored = {label: [(p, [w for w in model.file_window_scores(p, hop_seconds) if w.scored])
                      for p in audio_files(paths)]
              for label, paths in (("normal", normal), ("anomalous", anomalous))}  # silence is not judged
    too_short = [str(p) for v in scored.values() for p, ws in v if not ws]
    for label, v in scored.items():
        if not any(ws for _, ws in v):
            raise StreamaeError(
                f"no {label} recording has a {model.features.window_seconds:.2f} s window of the "
                f"machine running (too short or silent: {', '.join(too_short)})"
            )
    files = {k: np.array([FileScore.of(p, ws, model.threshold, policy).score for p, ws in v if ws])
             for k, v in scored.items()}
    windows = {k: np.array([w.score for _, ws in v for w in ws]) for k, v in scored.items()}
    report = {"model": str(model.path), "threshold": model.threshold, "too_short": too_short}
    for level, s in (("files", files), ("windows", windows)):
        report[level] = {**metrics.summary(s["normal"], s["anomalous"]),
                         "at_threshold": metrics.confusion(s["normal"], s["anomalous"], model.threshold)}
    return report


def format_report(report: dict) -> str:
    lines = [f"model {report['model']}, threshold {report['threshold']:.4f}"]
    if report["too_short"]:
        lines.append(f"skipped (shorter than one window): {', '.join(report['too_short'])}")
    for level in ("files", "windows"):
        r, c = report[level], report[level]["at_threshold"]
        lines.append(f"{level:7s} {r['normal']} normal / {r['anomalous']} anomalous: AUC {r['auc']:.3f}  "
                     f"pAUC(FPR<=0.1) {r['pauc']:.3f}  TPR@1%FPR {r['tpr_at_1pct_fpr']:.3f}  | at threshold: "
                     f"{c['true_positives']} TP, {c['false_negatives']} FN, {c['false_positives']} FP, "
                     f"{c['true_negatives']} TN")
    return "\n".join(lines)
