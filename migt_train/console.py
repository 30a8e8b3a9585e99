"""What a run prints to a terminal versus a redirected log: colour and carriage-return progress
bars only on a terminal; plain periodic lines otherwise (a `\r`-bar in a log file is 62 KB of noise
per run)."""

from __future__ import annotations

import logging
import sys
from typing import IO


def is_terminal(stream: IO[str] | None = None) -> bool:
    stream = stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def plain_optuna_logs() -> None:
    """Optuna's default handler colours every line (colorlog without a stream ignores the tty);
    off a terminal, replace it by an uncoloured handler with the same layout."""
    if is_terminal():
        return
    import optuna

    optuna.logging.disable_default_handler()
    root = logging.getLogger("optuna")
    if not any(getattr(h, "_migt_plain", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(levelname)1.1s %(asctime)s] %(message)s"))
        handler._migt_plain = True  # type: ignore[attr-defined]
        root.addHandler(handler)
