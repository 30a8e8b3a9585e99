"""Parquet cache of generated markets and processed features, keyed by a hash of what produced them.

Each cache file has a fingerprint beside it (`<file>.sha256.json`: sha256 of the parquet bytes, rows,
columns and the key): a file replaced by another valid parquet (other rows, a NaN column) or copied
under another key's name no longer matches and is rebuilt, with a warning naming it, instead of
being trained on.
"""

from __future__ import annotations

import hashlib
import json
import os
import logging
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from migt_train.utils.io import atomic_write, write_json

log = logging.getLogger(__name__)


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


def fingerprint_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256.json")


def _mismatch(path: Path, data: bytes, table: pa.Table) -> str | None:
    """Why the file is not the one its fingerprint describes (None when it is)."""
    try:
        fp = json.loads(fingerprint_path(path).read_text())
        expected = {k: fp[k] for k in ("sha256", "rows", "columns", "key")}
    except (OSError, ValueError, KeyError, TypeError):
        return f"no valid fingerprint {fingerprint_path(path).name}"
    if path.stem.rsplit("-", 1)[-1] != key_hash(expected["key"]):
        return "fingerprint belongs to another cache key (file copied under another name?)"
    if table.num_rows != expected["rows"]:
        return f"holds {table.num_rows:,} rows, its fingerprint {expected['rows']:,}"
    if table.column_names != expected["columns"]:
        return f"columns {table.column_names} differ from its fingerprint's {expected['columns']}"
    if hashlib.sha256(data).hexdigest() != expected["sha256"]:
        return "content differs from its fingerprint (sha256)"
    return None


def read(path: Path) -> pd.DataFrame | None:
    """The cached frame, or None when absent, unreadable or not matching its fingerprint (then it is
    rebuilt and overwritten)."""
    if not path.is_file():
        return None
    try:
        data = path.read_bytes()
        table = pq.read_table(pa.BufferReader(data))
    except Exception as exc:
        log.warning("cache %s is unreadable (%s); rebuilding it", path, type(exc).__name__)
        return None
    problem = _mismatch(path, data, table)
    if problem is not None:
        log.warning("cache %s: %s; rebuilding it", path, problem)
        return None
    return table.to_pandas()


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
        fingerprint_path(path).unlink(missing_ok=True)  # a kill between the two writes leaves no stale match
        atomic_write(path, lambda p: pq.write_table(table, p))
        data = path.read_bytes()
        write_json(fingerprint_path(path), {"sha256": hashlib.sha256(data).hexdigest(), "rows": table.num_rows,
                                            "columns": table.column_names,
                                            "key": json.loads(json.dumps(key, sort_keys=True, default=str))})
    except OSError as exc:
        warnings.warn(f"could not write cache {path}: {exc}", stacklevel=2)
