"""Training checkpoints: written atomically, read without unpickling arbitrary objects.

A training checkpoint (``last.pt``) is a ``torch.save`` of nothing but tensors and Python
primitives -- model, optimizer, scheduler and grad-scaler state, the EMA weights, RNG states,
the epoch, the metrics so far and the resolved config -- so it loads with
``torch.load(weights_only=True)``; anything else in the file is refused by the loader.
Writes go to a uniquely named temporary file in the same folder, are flushed to disk, then
renamed over the old file (:mod:`bimlp.files`): a process killed mid-write leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import CheckpointError, torch_load
from ..files import atomic_write

__all__ = [
    "TRAIN_FORMAT",
    "RUN_FILES",
    "atomic_torch_save",
    "check_run_folder",
    "load_training_checkpoint",
    "rng_state",
    "set_rng_state",
]

TRAIN_FORMAT = "bimlp-train-v1"


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` atomically (:func:`bimlp.files.atomic_write`)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


# What makes a folder "hold a run": a new run there would replace one of these.
RUN_FILES = ("last.pt", "metrics.csv", "*.safetensors")


def check_run_folder(
    out_dir: str | Path, resume_from: str | Path | None = None, overwrite: bool = False
) -> Path:
    """Make sure a run may write to ``out_dir``: it is (or can be made) a writable folder, and
    it holds no earlier run unless that run is the one being resumed or ``overwrite`` is set
    (then that run's ``last.pt``, weights and ``metrics.csv`` are deleted first, so that nothing
    of it can be mistaken for the new run's).

    Raises:
        ConfigError: naming the folder and, for a folder holding a run, the files found and
            the two ways on (``--resume``, ``run.overwrite=true``).
    """
    from ..files import OutputPathError, check_output_dir
    from .config import ConfigError

    out = Path(out_dir)
    for q in (out, *out.parents):
        if q.exists():
            if not q.is_dir():
                raise ConfigError(f"run.out_dir: {q} is a file, not a folder")
            break
    if out.is_dir():
        found = sorted({p for pattern in RUN_FILES for p in out.glob(pattern)})
        resuming = resume_from is not None and Path(resume_from).resolve().parent == out.resolve()
        if found and not resuming and overwrite:
            for p in found:
                p.unlink(missing_ok=True)  # every process of a torchrun job may get here
        elif found and not resuming:
            names = ", ".join(p.name for p in found)
            raise ConfigError(
                f"run.out_dir {out} already holds a run ({names}); continue it with "
                f"--resume {out / 'last.pt'} (or --auto-resume), choose another run.out_dir, or "
                f"replace it with "
                f"run.overwrite=true"
            )
    try:
        return check_output_dir(out, "run.out_dir")
    except OutputPathError as e:
        raise ConfigError(str(e)) from None


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
