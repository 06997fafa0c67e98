"""ONNX export of the simulated binary network (for interchange, not speed).

The exported graph is :func:`bimlp.deploy.simulate` of a paper-mode model: float32 convs with the
binarized weights as constants and ``Where(x >= 0, 1, -1)`` for the activations, so any ONNX
runtime computes the same outputs. The batch dimension is dynamic; the spatial size is fixed at
export time (the SAME max-pool paddings depend on it).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from ..files import atomic_write_path
from .simulate import simulate

__all__ = ["export_onnx"]


def export_onnx(model: nn.Module, path: str | Path, image_size: int = 224, opset: int = 17) -> Path:
    """Write ``model`` (a paper-mode BiMLP) as ONNX with input ``image`` (B, C, S, S) and output
    ``logits``. Requires the ``onnx`` package."""
    sim = simulate(model)
    chans = getattr(getattr(model, "config", None), "in_chans", 3)
    x = torch.zeros(1, chans, image_size, image_size)

    def write(tmp: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about the constant pooling pads
            torch.onnx.export(
                sim, (x,), tmp, dynamo=False, input_names=["image"], output_names=["logits"],
                dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=opset,
            )

    return atomic_write_path(path, write)
