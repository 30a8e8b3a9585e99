"""`python -m migt_train.benchmark`: the command line lives in migt_train/cli/benchmark.py (console script migt-benchmark)."""

import sys

from migt_train.cli.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
