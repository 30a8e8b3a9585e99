"""`python -m migt_train.bench`: the command line lives in migt_train/cli/bench.py (console script migt-bench)."""

import sys

from migt_train.cli.bench import main

if __name__ == "__main__":
    sys.exit(main())
