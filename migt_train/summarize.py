"""`python -m migt_train.summarize`: the command line lives in migt_train/cli/summarize.py (console script migt-summarize)."""

import sys

from migt_train.cli.summarize import main

if __name__ == "__main__":
    sys.exit(main())
