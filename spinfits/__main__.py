import sys

from spinfits.cli import main

sys.exit(main())
