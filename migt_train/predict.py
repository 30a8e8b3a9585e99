"""`python -m migt_train.predict`: the command line lives in migt_train/cli/predict.py (console script migt-predict)."""

import sys

from migt_train.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
