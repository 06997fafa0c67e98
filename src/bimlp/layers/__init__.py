"""Binary layers: quantizers, binary convolution, Uni-shortcut, ReActNet activations and a
BatchNorm that also trains on one value per channel."""

from .activation import LearnableBias, RPReLU
from .binary import MODES, BinaryConv2d, UniShortcut, group_mean, quantizer_names, tile_channels
from .fused import binary_unit, unit_tail
from .norm import BatchNorm2d
from .pooling import same_max_pool
from .quantizers import (
    QUANTIZERS,
    ApproxSign,
    ChannelMeanSign,
    Quantizer,
    ScaledSign,
    TernaryRound,
    get_quantizer,
    register_quantizer,
    sign_plus,
)
from .token_conv import TokenConv2d, token_conv

__all__ = [
    "ApproxSign", "BatchNorm2d", "BinaryConv2d", "ChannelMeanSign", "LearnableBias", "MODES",
    "QUANTIZERS", "binary_unit", "Quantizer", "RPReLU", "ScaledSign", "TernaryRound", "TokenConv2d", "UniShortcut", "get_quantizer",
    "group_mean", "quantizer_names", "register_quantizer", "same_max_pool", "sign_plus",
    "tile_channels", "token_conv", "unit_tail",
]
