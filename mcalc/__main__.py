"""Allow ``python -m mcalc``."""

import sys

from mcalc.run.cli import main

sys.exit(main())
