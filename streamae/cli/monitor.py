"""`streamae monitor SOURCE`: alerts from a file, a watched folder or the microphone."""
from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack, closing
from pathlib import Path

from ..anomaly.alerts import DEFAULT_RETRY_S, JsonLines, Webhook, default_outbox
from ..anomaly.monitor import DEFAULT_SETTLE_S, Monitor, monitor_source
from .common import add_anomaly_model_options, add_scoring_options, alert_policy, load_anomaly_model

EXIT_UNDELIVERED = 3  # the monitor ran, but some alerts did not reach the webhook (they are in the outbox)


def register(commands) -> None:
    p = commands.add_parser(
        "monitor",
        help="watch a file, a folder or the microphone and alert on anomalies",
        description="Score a sound source window by window and emit anomaly_start/anomaly_end "
        "alerts as JSON lines, with k-of-n hysteresis and a cooldown.",
    )
    p.add_argument(
        "source", metavar="SOURCE", help="an audio file, a folder to watch for new files, or 'mic'"
    )
    add_anomaly_model_options(p, threads=1)
    p.add_argument("--alerts", default=None, help="also append alerts to this JSON-lines file")
    p.add_argument(
        "--quiet", action="store_true", help="no alerts on stdout (use with --alerts or --webhook)"
    )
    p.add_argument("--webhook", default=None, metavar="URL",
                   help="POST each alert as JSON to this URL, at least once (each has an id: "
                   "drop duplicates)")
    p.add_argument("--outbox", default=None, metavar="DIR",
                   help="webhook: where alerts wait until delivered, across restarts (default "
                   "$XDG_STATE_HOME/streamae/outbox/<url hash>)")
    p.add_argument("--webhook-retry", type=float, default=DEFAULT_RETRY_S, metavar="S",
                   help="webhook: retry each alert for S seconds, with backoff, before it waits for the next "
                   "run; also the longest wait at exit (default %(default)s)")
    p.add_argument("--scores", default=None, metavar="FILE",
                   help="append every window's score to this JSON-lines file")
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="draw scores, threshold and alerts when done (matplotlib)")
    add_scoring_options(p, cooldown=True)
    p.add_argument("--level-alert", type=float, default=None, metavar="DB",
                   help="also alert (level_start/level_end) when the machine runs DB dB louder than its "
                   "normal training audio on k of n windows (default: off; level is never an anomaly)")
    p.add_argument(
        "--existing", action="store_true", help="folder: also score the files already there, oldest first"
    )
    p.add_argument("--poll", type=float, default=1.0, help="folder: seconds between looks for new files")
    p.add_argument("--settle", type=float, default=DEFAULT_SETTLE_S, metavar="S",
                   help="folder: a file that has not grown for S seconds is complete (default %(default)s; "
                   "WAV files are scored while they grow, other formats once complete)")
    p.add_argument("--idle-exit", type=float, default=None, metavar="S",
                   help="folder: stop after S seconds without a new file (default: run until Ctrl-C)")
    p.add_argument("-i", "--input-device", default=None, help="mic: input device, index or name")
    p.add_argument("--device", dest="input_device", help=argparse.SUPPRESS)  # the old name, kept as an alias
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="mic: stop after S seconds (default: run until Ctrl-C)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    model = load_anomaly_model(args)
    if args.plot:
        from ..anomaly.plot import check_available
        check_available()
    with ExitStack() as opened:
        sinks = [] if args.quiet else [JsonLines(sys.stdout)]
        if args.alerts:
            sinks.append(opened.enter_context(closing(JsonLines(args.alerts))))
        webhook = None
        if args.webhook:
            outbox = Path(args.outbox) if args.outbox else default_outbox(args.webhook)
            webhook = Webhook(args.webhook, outbox, retry_s=args.webhook_retry)
            sinks.append(webhook)
        score_log = opened.enter_context(closing(JsonLines(args.scores))) if args.scores else None
        monitor = Monitor(model, alert_policy(args), sinks, score_log, args.hop, args.level_alert)
        try:
            monitor_source(
                monitor,
                args.source,
                poll_s=args.poll,
                existing=args.existing,
                idle_exit_s=args.idle_exit,
                input_device=args.input_device,
                duration_s=args.duration,
                settle_s=args.settle,
            )
        finally:
            opened.close()
            undelivered = webhook.close() if webhook is not None else 0
            if args.plot:
                from ..anomaly.plot import plot_scores
                plot_scores(monitor.history, monitor.events, model.threshold, args.plot)
    return EXIT_UNDELIVERED if undelivered else 0
