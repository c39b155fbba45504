"""`python -m lggan ...` (and `torchrun -m lggan train ...`) run the command line."""

import sys

from .cli import main

sys.exit(main())
