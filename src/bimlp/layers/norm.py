"""BatchNorm that keeps training when a batch has one value per channel.

The re-weighting MLP of every BiMLP block sees globally pooled ``(B, C, 1, 1)`` maps, so a
training batch of one image (``data.batch_size=1``, or a batch of two with one undecodable file)
gives its BatchNorms a single value per channel, and ``nn.BatchNorm2d`` refuses it
("Expected more than 1 value per channel when training"). The variance of one value is zero:
batch statistics do not exist. This BatchNorm then normalises with its running statistics, as
in evaluation, and leaves them unchanged; with two or more values it is ``nn.BatchNorm2d``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BatchNorm2d"]


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (same parameters, buffers and names) that, in training mode, uses the
    running statistics for an input with one value per channel instead of raising."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.numel() == x.shape[1] and self.track_running_stats:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                False, 0.0, self.eps)
        return super().forward(x)
