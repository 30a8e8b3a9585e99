"""What the command-line entry points share: the parser of a run directory plus key=value overrides,
and turning a MigtError into one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from migt_train.errors import MigtError


def parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    """An argparse parser for `python -m migt_train.<name>`, described by the module docstring's first line."""
    return argparse.ArgumentParser(prog=f"python -m migt_train.{name}",
                                   description=(doc or "").strip().splitlines()[0] if doc else None)


def add_overrides(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument("overrides", nargs="*", metavar="key=value", help=f"config overrides, e.g. {example}")


def run_main(body: Callable[[], int]) -> int:
    """Run a CLI body: a MigtError is one line on stderr and exit status 2, never a traceback."""
    try:
        return body()
    except MigtError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def quiet_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def parse(p: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    """The parsed arguments, or the exit status argparse chose (--help: 0, a usage error: 2) as a
    return value, so `main(argv)` always returns an int."""
    try:
        return p.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:
        return int(e.code or 0)
