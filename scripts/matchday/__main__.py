"""`python -m scripts.matchday [options]` (and `--ws-worker SPEC`, which the day re-invokes)."""

import sys

from scripts.matchday.cli import main

sys.exit(main())
