"""``python -m steerkit.cli``: the ``steerkit`` command."""

import sys

from . import main

sys.exit(main())
