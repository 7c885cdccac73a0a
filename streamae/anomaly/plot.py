"""`--plot scores.png`: the window scores over time, the threshold and the alert spans.

matplotlib is an optional extra (`pip install 'streamae[plot]'`), imported only here.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import StreamaeError
from .scorer import WindowScore


def check_available() -> None:
    """Fail before the monitoring starts, not after an hour of it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise StreamaeError("--plot needs matplotlib: pip install 'streamae[plot]'") from None


def plot_scores(history: list[WindowScore], events: list[dict], threshold: float, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(10, 3.2), dpi=100)
    ax.plot(
        [w.end_s for w in history], [w.score for w in history], lw=1, color="tab:blue", label="window score"
    )
    ax.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"threshold {threshold:.3g}")
    for start, end in _spans(events, history[-1].end_s if history else 0.0):
        ax.axvspan(start, end, color="tab:red", alpha=0.15, lw=0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("anomaly score")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(
        f"{len(history)} windows, {sum(e['event'] == 'anomaly_start' for e in events)} alert(s)", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _spans(events: list[dict], last_s: float) -> list[tuple[float, float]]:
    spans, start = [], None
    for e in events:
        if e["event"] == "anomaly_start":
            start = e.get("onset_s", e["offset_s"])
        elif e["event"] == "anomaly_end" and start is not None:
            spans.append((start, e["offset_s"]))
            start = None
    if start is not None:
        spans.append((start, last_s))
    return spans
