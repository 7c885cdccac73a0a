"""The `streamae` command: the only code that knows argparse.

One module per command; each declares its sub-command the same way, `register(commands)`, which
adds its parser and sets `run`, a function of the parsed options that calls the library with
explicit arguments. No library module imports this package.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from .. import __version__
from ..audio import os_reason
from ..errors import StreamaeError
from . import anomaly, denoise, info, live, monitor, train

COMMANDS = (denoise, live, anomaly, monitor, info, train)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every `finally` runs: no temporary file is left."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    main_thread = threading.current_thread() is threading.main_thread()
    previous = (signal.getsignal(signal.SIGINT), signal.signal(signal.SIGTERM, _on_sigterm)) if main_thread \
        else None
    interrupted = False
    try:
        return args.run(args) or 0
    except StreamaeError as e:
        print(f"streamae: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        interrupted = True
        if main_thread:  # stopping already: a second Ctrl-C must not interrupt the goodbye
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("streamae: terminated" if isinstance(e, Terminated) else "streamae: interrupted",
              file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except BrokenPipeError:  # `streamae ... | head`: the reader has gone, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except OSError as e:  # a full disk, a read-only folder... where no library code said it better
        where = f"{e.filename}: " if e.filename else ""
        print(f"streamae: error: {where}{os_reason(e)}", file=sys.stderr)
        return 1
    finally:
        # as the program (argv None) after an interruption, stay deaf to signals on the way out;
        # called from Python, leave the handlers as they were
        if previous is not None and not (interrupted and argv is None):
            for signum, handler in zip((signal.SIGINT, signal.SIGTERM), previous):
                if handler is not None:  # None: set outside Python, cannot be put back
                    signal.signal(signum, handler)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamae", description="Real-time audio denoising and machine-sound anomaly alerts."
    )
    parser.add_argument("--version", action="version", version=f"streamae {__version__}")
    commands = parser.add_subparsers(metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    return parser
