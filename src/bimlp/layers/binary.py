"""Binary convolution and the Uni-shortcut.

``BinaryConv2d`` is an ``nn.Conv2d`` whose input and weight pass through quantizers first, so it
keeps the float layer's arguments and its ``weight`` name (checkpoints and the profiler rely on it).
``UniShortcut`` is BiMLP's shortcut that works when input and output channel counts differ.
"""

from __future__ import annotations

import torch
from torch import nn

from .quantizers import Quantizer, get_quantizer

__all__ = ["BinaryConv2d", "UniShortcut", "tile_channels", "group_mean", "MODES", "quantizer_names"]

MODES = ("paper", "official")


def quantizer_names(mode: str, binary_weights: bool = True) -> tuple[str, str]:
    """(input quantizer, weight quantizer) registry names for a numerical mode.

    ``binary_weights=False`` keeps real-valued weights (step 1 of the two-step recipe).
    """
    if mode == "paper":
        names = ("approx_sign", "scaled_sign")
    elif mode == "official":
        names = ("ternary_round", "channel_mean_sign")
    else:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    return names[0], names[1] if binary_weights else "identity"


class BinaryConv2d(nn.Conv2d):
    """``conv(Qa(x), Qw(W))``, never a bias; any kernel, stride, padding, dilation and groups.

    The arguments are ``nn.Conv2d``'s, in its order, plus the two quantizers (keyword-only).
    Two are refused rather than half-supported: ``bias=True`` (a binary conv is always followed
    by a BatchNorm, whose shift is the bias; the packed format has no place for one) and a
    ``padding_mode`` other than ``"zeros"`` (padded taps of a binary input are zeros, which the
    simulation and the packed runtime rely on).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, device,
            dtype: as ``nn.Conv2d`` (``kernel_size`` defaults to 1).
        bias: must be False (the default here).
        padding_mode: must be ``"zeros"``.
        input_quantizer: registry name of the activation quantizer (``approx_sign``,
            ``ternary_round``, or ``identity`` for real-valued inputs).
        weight_quantizer: registry name of the weight quantizer (``scaled_sign``,
            ``channel_mean_sign``, or ``identity`` for real-valued weights).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 1,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = False,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        input_quantizer: str = "approx_sign",
        weight_quantizer: str = "scaled_sign",
    ) -> None:
        if bias:
            raise ValueError(
                "BinaryConv2d has no bias: the BatchNorm after a binary conv carries the shift "
                "(and the packed format stores none); got bias=True"
            )
        if padding_mode != "zeros":
            raise ValueError(
                f"BinaryConv2d pads with zeros only (the simulation and the packed runtime "
                f"assume padded taps are 0); got padding_mode={padding_mode!r}"
            )
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding,
            dilation=dilation, groups=groups, bias=False, device=device, dtype=dtype,
        )
        self.input_quantizer: Quantizer = get_quantizer(input_quantizer)
        self.weight_quantizer: Quantizer = get_quantizer(weight_quantizer)

    @property
    def input_precision(self) -> int:
        return self.input_quantizer.precision

    @property
    def weight_precision(self) -> int:
        return self.weight_quantizer.precision_for(self.weight.shape)

    def quantized_weight(self) -> torch.Tensor:
        """The weight the convolution really uses (binarized and scaled)."""
        return self.weight_quantizer(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.input_quantizer(x), self.quantized_weight(), None)


def _channels_last(x: torch.Tensor) -> bool:
    """Channels-last memory (NHWC) that is not also plain contiguous (a 1 x 1 map is both)."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def tile_channels(x: torch.Tensor, k: int) -> torch.Tensor:
    """``k`` copies along channels: ``out[:, i] = x[:, i mod C]`` (not repeat_interleave).

    A channels-last input gives a channels-last output (the fast path's layout) by repeating
    its (B, H, W, C) view along the last axis, so no layout copy follows.
    """
    if _channels_last(x):
        return x.permute(0, 2, 3, 1).repeat(1, 1, 1, k).permute(0, 3, 1, 2)  # (B, kC, H, W)
    return x.repeat(1, k, 1, 1)


def group_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of each run of ``k`` consecutive channels: ``out[:, j] = mean(x[:, k*j : k*j + k])``.

    This equals the release's strided form ``(x[:, 0::k] + ... + x[:, k-1::k]) / k``.
    """
    b, c, h, w = x.shape
    if _channels_last(x):  # the runs are contiguous in the (B, H, W, C) view: no layout copy
        return x.permute(0, 2, 3, 1).reshape(b, h, w, c // k, k).mean(dim=4).permute(0, 3, 1, 2)
    return x.reshape(b, c // k, k, h, w).mean(dim=2)  # (B, C/k, H, W)


class UniShortcut(nn.Module):
    """BiMLP's Uni-shortcut from ``in_channels`` to ``out_channels``, chosen by shape.

    * equal: identity;
    * ``out = k * in``: tile the input ``k`` times along channels;
    * ``in = k * out``: mean of each group of ``k`` consecutive channels (pair-mean for k = 2).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        if in_channels == out_channels:
            self.kind, self.factor = "identity", 1
        elif out_channels % in_channels == 0:
            self.kind, self.factor = "tile", out_channels // in_channels
        elif in_channels % out_channels == 0:
            self.kind, self.factor = "mean", in_channels // out_channels
        else:
            raise ValueError(
                f"Uni-shortcut needs one channel count to divide the other, got "
                f"{in_channels} -> {out_channels}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "tile":
            return tile_channels(x, self.factor)
        if self.kind == "mean":
            return group_mean(x, self.factor)
        return x

    def extra_repr(self) -> str:
        return f"{self.in_channels} -> {self.out_channels}, {self.kind} x{self.factor}"

