"""``python -m tide``: see tide.cli."""

import sys

from tide.cli import main

sys.exit(main())
