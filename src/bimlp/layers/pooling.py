"""TF-style SAME max-pooling, used by BiMLP's cheap downsampling."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["same_max_pool"]


def same_max_pool(x: torch.Tensor, kernel: int, stride: int = 2) -> torch.Tensor:
    """Max-pool with TensorFlow's SAME padding (output ``ceil(H / stride)``), pad value -inf.

    The total padding ``(ceil(H/s) - 1) * s + k - H`` goes floor(half) to the top/left and the rest
    to the bottom/right -- unlike ``MaxPool2d(padding=k // 2)``, which pads symmetrically.
    """
    h, w = x.shape[-2:]
    pads = []
    for size in (w, h):  # F.pad takes the last dimension first
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), kernel, stride)
