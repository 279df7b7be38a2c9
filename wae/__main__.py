"""``python -m wae`` is the ``wae`` command."""

import sys

from .cli import main

sys.exit(main())
