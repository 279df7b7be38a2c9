"""The ``wae`` command's entry point (``python -m wae`` too). Importing the command line, and with
it torch and numpy, takes a second or two; a Ctrl-C then would interrupt an extension's import
half-way (numpy turns it into an ImportError, Python prints a traceback). So the import runs
with SIGINT held: a Ctrl-C during it is noted, the import finishes, and the command stops with
one line and exit code 130 before doing anything (the package's ``__init__`` imports nothing
heavy, so the whole import is covered)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from types import FrameType

STARTING = "wae: stopped by SIGINT while starting"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``wae`` with ``argv`` (default: the process's arguments); returns the exit code."""
    held: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        held.append(signum)

    previous = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, note)
        holding = True
    except ValueError:  # not the main thread (signals are the main thread's): nothing to hold
        holding = False
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:  # raised by an import itself rather than by the signal
        held.append(int(signal.SIGINT))
    finally:
        if holding:  # the handler of before (getsignal's None: one set outside Python -> default)
            signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if held:
        print(STARTING, file=sys.stderr)
        return 128 + int(signal.SIGINT)
    try:
        return cli_main(argv)
    except KeyboardInterrupt:  # before the command's own handlers (while its flags are read)
        print("wae: stopped by SIGINT", file=sys.stderr)
        return 128 + int(signal.SIGINT)
