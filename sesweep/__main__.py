"""``python -m sesweep`` is the ``sesweep`` command."""

import sys

from sesweep.cli import main

sys.exit(main())
