"""Training checkpoints: written atomically, read without unpickling arbitrary objects.

A training checkpoint (``last.pt``) is a ``torch.save`` of nothing but tensors and Python
primitives -- model, optimizer, scheduler and grad-scaler state, the EMA weights, RNG states,
the epoch, the metrics so far and the resolved config -- so it loads with
``torch.load(weights_only=True)``; anything else in the file is refused by the loader.
Writes go to a temporary file in the same folder, are flushed to disk, then renamed over the
old file: a process killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import CheckpointError, torch_load

__all__ = [
    "TRAIN_FORMAT",
    "atomic_torch_save",
    "load_training_checkpoint",
    "rng_state",
    "set_rng_state",
]

TRAIN_FORMAT = "bimlp-train-v1"


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` via a temporary file + fsync + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    try:  # make the rename itself durable (POSIX); not possible everywhere
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint with ``weights_only=True`` and check its format tag."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such training checkpoint")
    try:  # refuses pickles that would run code, names truncated files
        ckpt = torch_load(path)
    except CheckpointError as e:
        raise CheckpointError(f"not a readable training checkpoint: {e}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != TRAIN_FORMAT:
        raise CheckpointError(f"{path}: not a bimlp training checkpoint ({TRAIN_FORMAT})")
    return ckpt


def rng_state() -> dict[str, Any]:
    """Every RNG the loop touches, as tensors and primitives."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
