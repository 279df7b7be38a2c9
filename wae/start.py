"""The ``wae`` command's entry point (``python -m wae`` too): it imports the command line, and
with it torch, inside a guard, so that a Ctrl-C in the second or two that import takes gives
one line and exit code 130 rather than Python's traceback (the package's ``__init__`` imports
nothing heavy, so the guard covers the whole import)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``wae`` with ``argv`` (default: the process's arguments); returns the exit code."""
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        print("wae: stopped by SIGINT while starting", file=sys.stderr)
        return 128 + int(signal.SIGINT)
    try:
        return cli_main(argv)
    except KeyboardInterrupt:  # before the command's own handlers (while its flags are read)
        print("wae: stopped by SIGINT", file=sys.stderr)
        return 128 + int(signal.SIGINT)
