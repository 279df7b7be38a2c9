"""``python -m wae`` is the ``wae`` command."""

import os
import sys

from .start import entry


def _launched_world() -> int:
    """The launch's process count, 1 when wae.parallel was never loaded or the environment
    does not describe a launch (the command itself has said so by now)."""
    parallel = sys.modules.get("wae.parallel")
    try:
        return parallel.launched().world if parallel is not None else 1
    except Exception:  # a UserError for a malformed WORLD_SIZE, already reported
        return 1


code = entry()
if _launched_world() > 1:
    # Under torchrun the process group is destroyed by now; what is left are C++ threads of
    # the gloo/c10d runtime (and the rendezvous store) that the interpreter's teardown can
    # reach while they are still joinable: "terminate called without an active exception",
    # SIGABRT, and torchrun failing the whole launch. Nothing is left to write, so leave
    # without the teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
