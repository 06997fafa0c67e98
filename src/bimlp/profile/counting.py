"""What one layer costs: precisions, multiply-accumulates and memory bits.

The counting convention is the binary-network one (Bi-Real Net, ReActNet; ``docs/MODEL.md``,
"Complexity"):

* a multiply-accumulate (MAC) of a convolution or linear layer is a **BOP** when both of its
  operands are 1-bit, and a **FLOP** otherwise -- so 2-bit (ternary) activations, or binary
  activations against real-valued weights, are FLOPs;
* ``OPs = FLOPs + BOPs / 64``;
* memory is ``bits x count``: 1 bit per binary weight, 32 bits for every other parameter.

Precisions are read from the layer, never from a list of layer types: a module says what it
computes through ``weight_precision`` / ``input_precision`` attributes, or through
``weight_quantizer`` / ``input_quantizer`` modules that carry ``precision`` (and, for weights,
optionally ``precision_for(shape)``). A module with neither is full precision.

Which modules do MACs is structural: every ``nn.Linear`` and convolution (any dimension, stride,
padding, dilation, groups; transposed too), plus any module that counts its own with a
``profile_macs(inputs, output) -> int`` method.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = [
    "FULL_PRECISION",
    "ceil_bytes",
    "count_macs",
    "first_tensor",
    "input_precision",
    "is_binary_weight",
    "is_mac_layer",
    "ops",
    "parameter_bits",
    "quantizer_precision",
    "weight_precision",
]

FULL_PRECISION = 32  # bits of a float32 value


def _bits(value: Any) -> int:
    return FULL_PRECISION if value is None else int(value)


def quantizer_precision(module: nn.Module, role: str) -> int | None:
    """``precision`` of ``module.<role>_quantizer``; None when the module has no such quantizer.

    ``role`` is ``"input"`` or ``"weight"``. A quantizer set to None, or one without a
    ``precision`` attribute, is full precision.
    """
    if not hasattr(module, f"{role}_quantizer"):
        return None
    return _bits(getattr(getattr(module, f"{role}_quantizer"), "precision", None))


def weight_precision(module: nn.Module) -> int:
    """Bits per weight value that ``module`` really computes with.

    Order: the module's own ``weight_precision``; else its ``weight_quantizer``, asked through
    ``precision_for(weight.shape)`` when it has that method (a quantizer may leave some shapes
    real-valued, e.g. official-mode depthwise kernels) and through ``precision`` otherwise;
    else 32.
    """
    if hasattr(module, "weight_precision"):
        return _bits(module.weight_precision)
    quantizer = getattr(module, "weight_quantizer", None)
    weight = getattr(module, "weight", None)
    if quantizer is not None and hasattr(quantizer, "precision_for") and weight is not None:
        return _bits(quantizer.precision_for(weight.shape))
    return quantizer_precision(module, "weight") or FULL_PRECISION


def input_precision(module: nn.Module) -> int:
    """Bits per input value: the module's ``input_precision``, else its ``input_quantizer``'s
    ``precision``, else 32."""
    if hasattr(module, "input_precision"):
        return _bits(module.input_precision)
    return quantizer_precision(module, "input") or FULL_PRECISION


def is_mac_layer(module: nn.Module) -> bool:
    """Convolutions and linear layers, and modules that count their own MACs."""
    return isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)) or callable(
        getattr(module, "profile_macs", None)
    )


def count_macs(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> int:
    """Multiply-accumulates of one call of ``module`` (0 for modules that do none).

    * convolution: ``output elements x (in / groups) x kh x kw``; the weight is laid out
      (out, in / groups, *kernel), so that product is ``weight[0].numel()`` -- stride, padding,
      dilation and groups all enter through the output size and the weight shape;
    * transposed convolution: every input element meets ``(out / groups) x kh x kw`` weights
      (weight layout (in, out / groups, *kernel)): ``input elements x weight[0].numel()``;
    * linear: ``output elements x in_features`` (leading token dimensions included).
    """
    if callable(getattr(module, "profile_macs", None)):
        return int(module.profile_macs(inputs, output))
    out = first_tensor(output)
    if out is None:
        return 0
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        x = first_tensor(inputs)
        return 0 if x is None else x.numel() * module.weight[0].numel()
    if isinstance(module, nn.modules.conv._ConvNd):
        return out.numel() * module.weight[0].numel()
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    return 0


def parameter_bits(name: str, param: torch.Tensor, module: nn.Module) -> int:
    """Storage bits of one parameter: 1 per value for the ``weight`` of a layer whose weight
    precision is 1, 32 per value for everything else (biases, norms, real-valued weights and
    2-bit weights alike, since only 1-bit weights are packed)."""
    return param.numel() * (1 if is_binary_weight(name, module) else FULL_PRECISION)


def is_binary_weight(name: str, module: nn.Module) -> bool:
    """``module.<name>`` is the weight of a layer that computes with 1-bit weights."""
    return name == "weight" and weight_precision(module) == 1


def first_tensor(value: Any) -> torch.Tensor | None:
    """The first tensor in a (possibly nested) tuple, list or dict -- a module's main output."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        for item in value:
            found = first_tensor(item)
            if found is not None:
                return found
    return None


def ops(flops: int, bops: int) -> float:
    """OPs of the binary-network convention: ``FLOPs + BOPs / 64``."""
    return flops + bops / 64


def ceil_bytes(bits: int) -> int:
    """Bytes that hold ``bits`` (rounded up)."""
    return (bits + 7) // 8
