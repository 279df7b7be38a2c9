"""``python -m wae`` is the ``wae`` command."""

import os
import sys

from .start import main

code = main()
if "wae.parallel" in sys.modules and sys.modules["wae.parallel"].launched().world > 1:
    # Under torchrun the process group is destroyed by now; what is left are C++ threads of
    # the gloo/c10d runtime (and the rendezvous store) that the interpreter's teardown can
    # reach while they are still joinable: "terminate called without an active exception",
    # SIGABRT, and torchrun failing the whole launch. Nothing is left to write, so leave
    # without the teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
