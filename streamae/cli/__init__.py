"""The `streamae` command: the only code that knows argparse.

One module per command; each declares its sub-command the same way, `register(commands)`, which
adds its parser and sets `run`, a function of the parsed options that calls the library with
explicit arguments. No library module imports this package.
"""
from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from ..errors import StreamaeError
from . import anomaly, denoise, info, live, monitor, train

COMMANDS = (denoise, live, anomaly, monitor, info, train)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args) or 0
    except StreamaeError as e:
        print(f"streamae: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("streamae: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `streamae ... | head`: the reader has gone, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamae", description="Real-time audio denoising and machine-sound anomaly alerts."
    )
    parser.add_argument("--version", action="version", version=f"streamae {__version__}")
    commands = parser.add_subparsers(metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    return parser
