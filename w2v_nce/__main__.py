"""`python -m w2v_nce ...` is the `w2v-nce` command (torchrun needs a module to run)."""

import sys

from w2v_nce.cli import main

sys.exit(main())
