"""Allow ``python -m mcalc``."""

import sys

from mcalc.cli import main

sys.exit(main())
