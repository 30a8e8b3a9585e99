"""Checkpoint files: the format and its required keys, safe loading, RNG capture/restore, top-k files.

Every value stored is a tensor or a plain Python value so files load with torch.load(weights_only=True).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from migt_train.errors import MigtError

FORMAT_VERSION = 1
TOPK_PATTERN = re.compile(r"^epoch=(\d+)-val_loss=([0-9.eE+-]+|nan|inf)\.pt$")

# keys every checkpoint carries; load_checkpoint refuses a file that lacks one
REQUIRED_KEYS = (
    "format_version", "model", "optimizer", "scheduler", "scaler", "early_stopping", "epoch",
    "global_step", "history", "rng", "sampler", "config", "feature_names", "horizon_names",
    "levels", "target_scaling", "topk", "mid_epoch",
)


def topk_name(epoch: int, val_loss: float) -> str:
    return f"epoch={epoch:03d}-val_loss={val_loss:.6f}.pt"


def capture_rng() -> dict[str, Any]:
    version, mt, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(mt), gauss],
        "numpy": [np_name, torch.from_numpy(np.asarray(np_keys, dtype=np.int64)), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # this process's GPU only: one GPU per process, and the count may differ at resume
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    name, keys, pos, has_gauss, g = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, g))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        torch.cuda.set_rng_state(cuda[0] if isinstance(cuda, list) else cuda)  # list: older files (all GPUs)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """torch.load onto the CPU without arbitrary pickles; an unreadable or non-dict file -> one MigtError."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated/foreign files
        raise MigtError(f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from e
    if not isinstance(ckpt, dict):
        raise MigtError(f"{path}: not a migt-train checkpoint (got {type(ckpt).__name__})")
    return ckpt


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a trainer checkpoint onto the CPU; any unreadable or foreign file -> one MigtError naming it."""
    path = Path(path)
    if not path.is_file():
        raise MigtError(f"{path}: checkpoint not found")
    ckpt = read_checkpoint(path)
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise MigtError(f"{path}: not a migt-train checkpoint (missing {', '.join(missing)})")
    if ckpt["format_version"] != FORMAT_VERSION:
        raise MigtError(f"{path}: checkpoint format {ckpt['format_version']}, this version reads {FORMAT_VERSION}")
    return ckpt


class TopK:
    """The k best epochs by val loss, each kept as its own file; a file is deleted when it falls out."""

    def __init__(self, directory: Path, k: int) -> None:
        self.directory = directory
        self.k = int(k)
        self.entries: list[tuple[float, int, str]] = []  # (val_loss, epoch, file name), best first

    def offer(self, val_loss: float, epoch: int) -> tuple[str | None, list[str]]:
        """-> (file name to write or None, file names to delete once the new file is written)."""
        if self.k <= 0 or val_loss != val_loss:
            return None, []
        entries = sorted(self.entries + [(val_loss, epoch, topk_name(epoch, val_loss))])
        kept, dropped = entries[: self.k], entries[self.k :]
        name = topk_name(epoch, val_loss)
        if all(e[2] != name for e in kept):
            return None, []
        self.entries = kept
        return name, [e[2] for e in dropped if e[2] != name]

    def remove_untracked(self) -> None:
        """After a resume: drop top-k files a killed run wrote or failed to delete after last.pt."""
        keep = {e[2] for e in self.entries}
        for p in self.directory.glob("epoch=*-val_loss=*.pt"):
            if TOPK_PATTERN.match(p.name) and p.name not in keep:
                p.unlink(missing_ok=True)

    def state_dict(self) -> dict[str, Any]:
        return {"k": self.k, "entries": [list(e) for e in self.entries]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.entries = [(float(v), int(e), str(n)) for v, e, n in state["entries"]]
