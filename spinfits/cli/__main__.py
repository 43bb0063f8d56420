"""``python -m spinfits.cli``: the same as ``spinfits`` / ``python -m spinfits``."""

import sys

from spinfits.cli import main

sys.exit(main())
