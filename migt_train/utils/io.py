"""Atomic file writes: a reader (or a kill -9) never sees a half-written file."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from migt_train.errors import MigtError


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back (no thread writes files meanwhile)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# read once: files are created as open() would create them, not 0600 as mkstemp makes them
UMASK = _umask()

class WriteError(MigtError, OSError):
    """A write the disk refused (full, read-only, quota), naming the file: a MigtError for the one-line
    report, an OSError for callers that may go on without the file (the feature cache)."""


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write via `write(temp path)` in the same folder, then rename over `path`. A disk that refuses the write
    is a WriteError naming `path`."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~UMASK)
        os.close(fd)
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.strerror:
            raise WriteError(f"{path}: cannot write ({e.strerror})") from None
        raise
    return path


def _json_safe(obj: Any) -> Any:
    """NaN/inf are not JSON: write them as null so every reader can parse the file."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return _json_safe(obj.item())
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    text = json.dumps(_json_safe(obj), indent=2, allow_nan=False)
    return atomic_write(path, lambda p: p.write_text(text + "\n"))


def read_run_file(path: Path, missing: str) -> Any:
    """A JSON file a run stored (e.g. vol_anchor.json); one MigtError naming the file when it is missing
    (`missing` says why that matters) or unreadable."""
    from migt_train.errors import MigtError

    if not path.is_file():
        raise MigtError(f"{path}: not found: {missing}")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise MigtError(f"{path}: cannot read ({e})") from None


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    def write(p: Path) -> None:
        with open(p, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, write)
