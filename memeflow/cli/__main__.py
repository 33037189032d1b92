"""`python -m memeflow.cli`: the same as the `memeflow` command."""

import sys

from memeflow.cli.main import main

sys.exit(main())
