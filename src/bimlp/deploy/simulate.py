"""The float32 "simulated" binary network: the same graph as a ``paper``-mode BiMLP in eval, with
every binary weight materialized once as ``sign(W) * scale`` and activations signed in the graph.

This is the honest float baseline for the packed engine (it computes the same outputs with plain
PyTorch kernels) and the model exported to ONNX for interchange (no custom autograd functions).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import BinaryConv2d, sign_plus

__all__ = ["SignedConv2d", "simulate", "check_packable"]


class SignedConv2d(nn.Module):
    """``conv(sign(x), W_q)`` with ``W_q`` a fixed float tensor; sign(0) = +1, values exactly ±1."""

    def __init__(self, conv: BinaryConv2d) -> None:
        super().__init__()
        self.register_buffer("weight", conv.quantized_weight().detach().clone())
        self.stride, self.padding = conv.stride, conv.padding
        self.dilation, self.groups = conv.dilation, conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(sign_plus(x), self.weight, None, self.stride, self.padding, self.dilation, self.groups)


def check_packable(model: nn.Module) -> None:
    """Raise a clear ``ValueError`` for models whose binary layers are not truly 1-bit."""
    cfg = getattr(model, "config", None)
    mode = getattr(cfg, "mode", getattr(model, "mode", "paper"))
    if mode == "official":
        raise ValueError(
            "official-mode BiMLP models use ternary activations round(clip(x, -1, 1)) in {-1, 0, +1} "
            "and per-tap weight scales; they need a 2-bit encoding, which the 1-bit engine does not "
            "have. Build the model with mode='paper' (the truly binary numerics) to export or pack it."
        )
    if cfg is not None and not getattr(cfg, "binary_weights", True):
        raise ValueError(
            "this model keeps real-valued weights (binary_weights=False, step 1 of the recipe); "
            "only models with binary weights can be packed"
        )
    for name, m in model.named_modules():
        if isinstance(m, BinaryConv2d) and (
            m.input_quantizer.name != "approx_sign" or m.weight_quantizer.name != "scaled_sign"
        ):
            raise ValueError(
                f"{name}: quantizers ({m.input_quantizer.name}, {m.weight_quantizer.name}) are not "
                "the paper-mode 1-bit pair (approx_sign, scaled_sign); cannot pack"
            )


@torch.no_grad()
def simulate(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode with every ``BinaryConv2d`` replaced by a
    :class:`SignedConv2d` (weights binarized once). The input model is not modified."""
    check_packable(model)
    sim = copy.deepcopy(model).eval()
    for m in list(sim.modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, BinaryConv2d):
                setattr(m, child_name, SignedConv2d(child))
    return sim
