"""`python -m chalicelib.push` (what `bin/stratus push` runs)."""

import sys

from .cli import main

sys.exit(main())
