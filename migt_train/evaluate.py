"""`python -m migt_train.evaluate`: the command line lives in migt_train/cli/evaluate.py (console script migt-evaluate)."""

import sys

from migt_train.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
