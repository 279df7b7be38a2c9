"""The ``wae`` command's entry point (``python -m wae`` and ``python -m wae.start`` too).
Importing the command line, and with it torch and numpy, takes a second or two; a Ctrl-C then
would interrupt an extension's import half-way (numpy turns it into an ImportError, Python
prints a traceback). So the import runs with SIGINT held: a Ctrl-C during it is noted, the
import finishes, and the command stops with one line and exit code 130 before doing anything
(the package's ``__init__`` imports nothing heavy, so the whole import is covered).

SIGINT is held only where Python's own handler (KeyboardInterrupt) is in force: an ignored
SIGINT stays ignored (``nohup``-like supervisors, ``trap '' INT``, a script's background job),
and an embedding program's own handler keeps receiving it. The command itself (:func:`entry`)
then ignores SIGINT once its work is done, so that a late Ctrl-C cannot turn the
interpreter's teardown into a traceback and a failed exit status."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

STARTING = "wae: stopped by SIGINT while starting"


def _set_sigint(handler: object) -> bool:
    """Install ``handler`` for SIGINT; False outside the main thread (signals are its alone)."""
    try:
        signal.signal(signal.SIGINT, handler)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def _run(argv: Sequence[str] | None, ignore_after: bool) -> int:
    try:
        os.getcwd()
    except FileNotFoundError:  # torch's import then fails in oneMKL ("Cannot load libtorch_cpu.so"), exit 2
        print(
            "wae: error: the current folder no longer exists (removed or moved): cd into one that does", file=sys.stderr
        )
        return 2
    held: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        held.append(signum)

    previous = signal.getsignal(signal.SIGINT)
    ours = previous is signal.default_int_handler  # else ignored, or an embedding program's
    holding = ours and _set_sigint(note)
    done = signal.SIG_IGN if ignore_after else previous
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:  # raised by an import itself rather than by the signal
        held.append(int(signal.SIGINT))
    finally:
        if holding and not held:
            _set_sigint(previous)
    if held:
        print(STARTING, file=sys.stderr)
        if holding:
            _set_sigint(done)
        return 128 + int(signal.SIGINT)
    try:
        code = cli_main(argv)
    except KeyboardInterrupt:  # before the command's own handlers (while its flags are read)
        if ours and ignore_after:
            _set_sigint(signal.SIG_IGN)
        print("wae: stopped by SIGINT", file=sys.stderr)
        return 128 + int(signal.SIGINT)
    if ours and ignore_after and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        _set_sigint(signal.SIG_IGN)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``wae`` with ``argv`` (default: the process's arguments); returns the exit code. For
    programs that call the command line: the SIGINT handler found is in force again on return."""
    return _run(argv, ignore_after=False)


def entry() -> int:
    """The ``wae`` command (console script, ``python -m wae``): :func:`main` on the process's
    arguments, then SIGINT ignored for the interpreter's teardown (the exit code is the
    command's); returns the exit code."""
    return _run(None, ignore_after=True)


if __name__ == "__main__":
    sys.exit(entry())
