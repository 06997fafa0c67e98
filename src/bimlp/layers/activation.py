"""Real-valued helpers around binary layers: LearnableBias and RPReLU (ReActNet)."""

from __future__ import annotations

import torch
from torch import nn

from .fused import rprelu

__all__ = ["LearnableBias", "RPReLU"]


class LearnableBias(nn.Module):
    """``x + b`` with a per-channel ``b`` of shape (1, C, 1, 1), initialised to 0.

    Placed before a binary layer it learns the sign threshold (ReActNet's RSign); the official
    checkpoints name it ``move*`` with the tag ``move*.bias``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias

    def extra_repr(self) -> str:
        return f"{self.bias.shape[1]}"


class RPReLU(nn.Module):
    """ReActNet's RPReLU: ``move2(PReLU(move1(x)))`` with a per-channel slope initialised to 0.25.

    ``fused = True`` (set by a model's ``set_fast_path``) runs it as one autograd node with a
    hand-written backward (:func:`~bimlp.layers.fused.rprelu`): the same values and gradients.
    """

    fused: bool = False

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.move1 = LearnableBias(channels)
        self.act = nn.PReLU(channels, init=0.25)
        self.move2 = LearnableBias(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            return rprelu(x, self.move1.bias, self.act.weight, self.move2.bias)
        return self.move2(self.act(self.move1(x)))
