"""Mixed precision: ``run.amp`` -> the autocast dtype, and the autocast context."""

from __future__ import annotations

import contextlib

import torch

from .config import ConfigError

__all__ = ["amp_dtype", "autocast"]


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype ``run.amp`` asks for on ``device`` (``None``: full precision).

    ``auto`` is bf16 where the GPU supports it, else none; fp16 needs a GPU (its loss scaler
    has no CPU path worth using).
    """
    if amp == "none":
        return None
    if amp == "auto":
        ok = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if ok else None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        if device.type != "cuda":
            raise ConfigError("run.amp=fp16 needs a GPU; use bf16 on the CPU")
        return torch.float16
    raise ConfigError(f"run.amp must be none, auto, bf16 or fp16, got {amp!r}")


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``; a no-op for ``None``."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
