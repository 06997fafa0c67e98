"""Readers: a checkpoint file -> a state dict and whatever configuration it carries.

Nothing here builds a model. :func:`open_checkpoint` is the one entry point every weight file
of the package goes through (the builder, distillation teachers, ``bimlp eval``): it sniffs the
format, applies the one policy for EMA weights and DDP ``module.`` prefixes, and, for our
safetensors files, reads only the header until the tensors are asked for -- so the builder can
compare every key and shape with the architecture before anything is allocated.

Readers: :mod:`.mindspore` (protobuf wire format) and :mod:`.official` (the release's tags,
configuration inferred from them), :mod:`.torch_pickle` (PyTorch files), and our safetensors
files through :mod:`bimlp.checkpoint`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import (
    CheckpointError,
    read_safetensors,
    safetensors_header,
    shapes_of,
    sniff_format,
    stored_config,
)
from .official import read_official
from .torch_pickle import read_torch_checkpoint, strip_ddp_prefix

__all__ = ["CheckpointFile", "open_checkpoint"]

_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}


@dataclass
class CheckpointFile:
    """One opened checkpoint.

    Attributes:
        path: the file.
        format: ``safetensors``, ``torch`` or ``mindspore``.
        config: configuration fields stored in (or inferred by the reader from) the file;
            ``{}`` when it carries none.
        family: the model family the file names (``bimlp``, ``wavemlp``) or ``None``.
        shapes: every tensor's name and shape, known before any tensor is allocated.
    """

    path: Path
    format: str
    config: dict[str, Any]
    family: str | None
    shapes: dict[str, tuple[int, ...]]
    _state: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    _dtypes: dict[str, str] = field(default_factory=dict, repr=False)

    def meta_state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors as ``meta`` tensors (names, shapes, dtypes; no storage)."""
        if self._state is not None:
            return {k: v.to("meta") for k, v in self._state.items()}
        return {
            k: torch.empty(shape, dtype=_DTYPES.get(self._dtypes.get(k, ""), torch.float32),
                           device="meta")
            for k, shape in self.shapes.items()
        }

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors themselves (read from disk now for safetensors files)."""
        if self._state is None:
            state, _ = read_safetensors(self.path)
            self._state = strip_ddp_prefix(state, self.path)
        return self._state


def open_checkpoint(path: str | Path, use_ema: bool = False) -> CheckpointFile:
    """Open any supported checkpoint (by content, not by name).

    Args:
        path: the file.
        use_ema: the EMA copy of a training checkpoint instead of its weights. Only PyTorch
            training checkpoints hold one (``state_dict_ema``, ``model_ema``, our ``ema``);
            asking for it elsewhere is an error, and it is never a silent fallback.

    Raises:
        CheckpointError: naming the file, for anything that cannot be read safely.
    """
    path = Path(path)
    kind = sniff_format(path)
    if kind == "safetensors":
        if use_ema:
            raise CheckpointError(
                f"{path}: a safetensors file holds one set of weights, not an EMA copy "
                "(bimlp train writes the EMA weights to model_ema.safetensors)"
            )
        meta, entries = safetensors_header(path)
        config, family = stored_config(meta, path)
        names = strip_ddp_prefix(dict.fromkeys(entries), path)
        shapes = dict(zip(names, (shape for _, shape in entries.values()), strict=True))
        dtypes = dict(zip(names, (dtype for dtype, _ in entries.values()), strict=True))
        return CheckpointFile(path, kind, config, family, shapes, None, dtypes)
    if kind == "mindspore":
        if use_ema:
            raise CheckpointError(f"{path}: a MindSpore checkpoint holds no EMA copy")
        state, config = read_official(path)
        return CheckpointFile(path, kind, config, "bimlp", shapes_of(state), state)
    state, config = read_torch_checkpoint(path, use_ema=use_ema, with_config=True)
    return CheckpointFile(path, kind, config, None, shapes_of(state), state)
