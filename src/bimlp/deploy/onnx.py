"""ONNX export of the simulated binary network (for interchange, not speed).

The exported graph is :func:`bimlp.deploy.simulate` of a paper-mode model: float32 convs with the
binarized weights as constants and ``Where(x >= 0, 1, -1)`` for the activations, so any ONNX
runtime computes the same outputs. The batch dimension is dynamic; the spatial size is fixed at
export time (the SAME max-pool paddings depend on it).

It uses PyTorch's current exporter (``torch.onnx.export(..., dynamo=True)``: ``torch.export``
then onnxscript), which needs the ``onnx`` and ``onnxscript`` packages
(``pip install "bimlp[onnx]"``). Its warnings are left visible.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..files import atomic_write_path
from .simulate import simulate

__all__ = ["export_onnx"]


def export_onnx(model: nn.Module, path: str | Path, image_size: int = 224, opset: int = 18) -> Path:
    """Write ``model`` (a paper-mode BiMLP) as ONNX with input ``image`` (B, C, S, S) and output
    ``logits``; B is dynamic.

    Raises:
        ImportError: ``onnx`` or ``onnxscript`` is not installed.
    """
    for needed in ("onnx", "onnxscript"):
        try:
            __import__(needed)
        except ImportError:
            raise ImportError(
                f"ONNX export needs {needed}: pip install 'bimlp[onnx]'") from None
    sim = simulate(model)
    chans = getattr(getattr(model, "config", None), "in_chans", 3)
    x = torch.zeros(2, chans, image_size, image_size)  # batch 2: 1 would be specialised away
    program = torch.onnx.export(
        sim, (x,), dynamo=True, input_names=["image"], output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=opset, verbose=False,
    )
    return atomic_write_path(path, lambda tmp: program.save(tmp))
