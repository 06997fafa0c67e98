"""The float32 "simulated" binary network: the same graph as a BiMLP in eval, with every binary
weight materialized once as ``sign(W) * scale`` and activations quantized in the graph (signed in
``paper`` mode, ``round(clip(x, -1, 1))`` in ``official`` mode).

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
    """``conv(q(x), W_q)`` with ``W_q`` a fixed float tensor and ``q`` sign (sign(0) = +1, values
    exactly ±1) or, with ``ternary``, ``round(clip(x, -1, 1))`` (official mode)."""

    def __init__(self, conv: BinaryConv2d) -> None:
        super().__init__()
        self.register_buffer("weight", conv.quantized_weight().detach().clone())
        self.stride, self.padding = conv.stride, conv.padding
        self.dilation, self.groups = conv.dilation, conv.groups
        self.ternary = conv.input_quantizer.name == "ternary_round"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = torch.round(x.clamp(-1.0, 1.0)) if self.ternary else sign_plus(x)
        return F.conv2d(q, self.weight, None, self.stride, self.padding, self.dilation, self.groups)


# the quantizer pair of each numerical mode (see bimlp.layers.quantizer_names)
_PAIRS = {"paper": ("approx_sign", "scaled_sign"), "official": ("ternary_round", "channel_mean_sign")}


def check_packable(model: nn.Module) -> None:
    """Raise a clear ``ValueError`` for models whose binary layers the runtime cannot run: real-
    valued weights, or quantizers that are not the pair of the model's mode."""
    cfg = getattr(model, "config", None)
    mode = getattr(cfg, "mode", getattr(model, "mode", "paper"))
    if mode not in _PAIRS:
        raise ValueError(f"mode {mode!r}: only 'paper' and 'official' models can be packed")
    if cfg is not None and not getattr(cfg, "binary_weights", True):
        raise ValueError(
            "this model keeps real-valued weights (binary_weights=False, step 1 of the recipe); "
            "only models with binary weights can be packed"
        )
    for name, m in model.named_modules():
        pair = _PAIRS[mode]
        if isinstance(m, BinaryConv2d) and (m.input_quantizer.name, m.weight_quantizer.name) != pair:
            raise ValueError(
                f"{name}: quantizers ({m.input_quantizer.name}, {m.weight_quantizer.name}) are not "
                f"the {mode}-mode pair {pair}; cannot pack"
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
