"""Parquet cache of generated markets and processed features, keyed by a hash of what produced them."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from migt_train.io import atomic_write


def cache_dir(configured: str | os.PathLike | None) -> Path:
    """data.cache_dir, else $MIGT_CACHE_DIR, else ~/.cache/migt_train."""
    if configured:
        return Path(configured).expanduser()
    env = os.environ.get("MIGT_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "migt_train"


def key_hash(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]


def cache_path(directory: Path, kind: str, key: dict[str, Any]) -> Path:
    return directory / f"{kind}-{key_hash(key)}.parquet"


def read(path: Path) -> pd.DataFrame | None:
    """The cached frame, or None when absent or unreadable (then it is rebuilt and overwritten)."""
    if not path.is_file():
        return None
    try:
        return pq.read_table(path).to_pandas()
    except Exception:
        return None


def read_meta(path: Path) -> dict[str, Any]:
    """The `meta` stored with the frame by `write` ({} when none or unreadable)."""
    try:
        raw = (pq.read_schema(path).metadata or {}).get(b"migt_meta")
        return json.loads(raw) if raw else {}
    except Exception:
        return {}


def write(path: Path, frame: pd.DataFrame, key: dict[str, Any], meta: dict[str, Any] | None = None) -> None:
    """Atomic write; the key travels in the file metadata so a cache file explains itself, and `meta` (small,
    JSON) with it for what the frame alone does not hold. A cache that cannot be written only costs time,
    so it warns instead of failing the run."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    stored = dict(table.schema.metadata or {})
    stored[b"migt_key"] = json.dumps(key, sort_keys=True, default=str).encode()
    if meta is not None:
        stored[b"migt_meta"] = json.dumps(meta, sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata(stored)
    try:
        atomic_write(path, lambda p: pq.write_table(table, p))
    except OSError as exc:
        warnings.warn(f"could not write cache {path}: {exc}", stacklevel=2)
