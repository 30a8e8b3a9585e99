"""`python -m migt_train.export`: the command line lives in migt_train/cli/export.py (console script migt-export)."""

import sys

from migt_train.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
