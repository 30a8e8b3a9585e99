"""SIGINT/SIGTERM as a request to stop the run, recorded as interrupted and resumable.

One exception, `RunStopped`, and two ways a signal is handled, by what is going on:
- inside the training loop (`StopSignal`): the request is noted and the trainer stops at the next
  optimizer-step boundary, saves last.pt and raises RunStopped; a second Ctrl-C aborts at once;
- around it (`StopsRaise`, the whole job): RunStopped is raised at once, so a stop while loading data
  or evaluating is recorded as interrupted with a message instead of the run dying as "running".

RunStopped is a BaseException, like KeyboardInterrupt, so that no `except Exception` on the way
(checkpoint reader, plotting) turns it into another error.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunStopped(BaseException):
    """A stop signal: the message says what was saved and how to resume; `signum` is the signal."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


class _Handlers:
    """Installs `_handler` for SIGINT/SIGTERM on entry (main thread only) and restores the old ones on exit."""

    def __init__(self) -> None:
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        raise NotImplementedError

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handler) for s in SIGNALS}
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}


class StopSignal(_Handlers):
    """The training loop's handler: `with StopSignal() as stop:`; `stop.signum` is the signal received,
    None while none has been; the loop checks `stop.requested` at step boundaries."""

    def __init__(self) -> None:
        super().__init__()
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: abort now
        self.signum = signum

    def __enter__(self) -> "StopSignal":
        self.signum = None
        return super().__enter__()

    def received(self) -> signal.Signals:
        """The signal received (SIGTERM when asked before any arrived)."""
        return signal.Signals(self.signum or signal.SIGTERM)


class StopsRaise(_Handlers):
    """The job's handler outside the training loop (whose own StopSignal takes over while it runs):
    raises RunStopped at once. `phase` says what was going on."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.phase = "before training started"

    def _handler(self, signum: int, frame: Any) -> None:
        raise RunStopped(
            f"interrupted by {signal.Signals(signum).name} {self.phase}. Continue it with "
            f"python run.py trainer.resume=auto hydra.run.dir={self.run_dir}", signum)

    def __enter__(self) -> "StopsRaise":
        return super().__enter__()
