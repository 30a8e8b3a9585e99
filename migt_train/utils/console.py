"""What a run prints to a terminal versus a redirected log: colour and carriage-return progress
bars only on a terminal; plain periodic lines otherwise (a `\r`-bar in a log file is 62 KB of noise
per run)."""

from __future__ import annotations

import logging
import sys
import time
from typing import IO, Any


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


class PlainProgress:
    """tqdm's update/set_postfix/close as one plain line every `interval` seconds (and none for a
    loop shorter than that): readable in a redirected log, a few hundred bytes per run."""

    def __init__(self, total: int, desc: str, initial: int = 0, interval: float = 30.0,
                 stream: IO[str] | None = None) -> None:
        self.total, self.desc, self.n, self.interval = total, desc, initial, interval
        self.stream = stream or sys.stderr
        self.postfix = ""
        self.t0 = self.last = time.monotonic()
        self.start_n = initial

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            done = self.n - self.start_n
            rate = done / max(now - self.t0, 1e-9)
            eta = (self.total - self.n) / rate if rate > 0 else float("nan")
            pct = 100.0 * self.n / self.total if self.total else 100.0
            print(f"{self.desc}: {self.n:,}/{self.total:,} ({pct:.0f}%), {now - self.t0:.0f} s, "
                  f"~{eta:.0f} s left{self.postfix}", file=self.stream, flush=True)

    def set_postfix(self, **values: object) -> None:
        self.postfix = "".join(f", {k} {v}" for k, v in values.items())

    def close(self) -> None:
        pass


def progress(enabled: bool, total: int, desc: str, initial: int = 0) -> Any:
    """A tqdm bar on a terminal, plain periodic lines otherwise, None when disabled."""
    if not enabled:
        return None
    if not is_terminal():
        return PlainProgress(total, desc, initial)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)
