"""SIGINT/SIGTERM as a stop request: the trainer stops at the next optimizer-step boundary, saves
last.pt and raises TrainingInterrupted; a second Ctrl-C aborts at once."""

from __future__ import annotations

import signal
import threading
from types import TracebackType
from typing import Any

from migt_train.errors import MigtError


class TrainingInterrupted(MigtError):
    """SIGINT/SIGTERM: state saved to last.pt; the message says how to resume."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


class StopSignal:
    """`with StopSignal() as stop:` installs the handlers (main thread only) and restores the old ones
    on exit; `stop.signum` is the signal received, None while none has been."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: abort now
        self.signum = signum

    def __enter__(self) -> "StopSignal":
        self.signum = None
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handler) for s in self.SIGNALS}
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}

    def received(self) -> signal.Signals:
        """The signal received (SIGTERM when asked before any arrived)."""
        return signal.Signals(self.signum or signal.SIGTERM)
