"""ReActNet-A: the binary CNN baseline BiMLP compares against.

Zechun Liu, Zhiqiang Shen, Marios Savvides, Kwang-Ting Cheng, "ReActNet: Towards Precise Binary
Neural Network with Generalized Activation Functions", ECCV 2020 (arXiv 2003.03488); 69.4 %
ImageNet top-1 at 4.82e9 BOPs, 1.2e7 FLOPs, 8.7e7 OPs.

The MobileNet-v1 layout with every depthwise-separable pair replaced by a *full* binary 3x3
conv and a binary 1x1 conv, each wrapped as ``RPReLU(BN(BiConv(RSign(x))) + shortcut(x))``:

* RSign is the learnable per-channel shift (``LearnableBias``) before the sign;
* stride-2 blocks take a 2x2 average pool as the 3x3 conv's shortcut;
* where the channel count doubles, two binary 1x1 convs (``C -> C`` each) see the same input,
  each adds the block's real-valued input as its shortcut, and their outputs are concatenated.

The stem is a full-precision 3x3 stride-2 conv + BatchNorm (no activation), the head a global
average pool and a full-precision linear classifier. Quantizers are this project's ``paper``
ones (``sign`` with ApproxSign, ``sign(W) * mean|W|`` per output channel), so the two-step
recipe is the same switch as for BiMLP: ``binary_weights=False`` (step 1) / ``True`` (step 2).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import generate_default_cfgs
from torch import nn

from ..layers import BatchNorm2d, BinaryConv2d, LearnableBias, RPReLU, quantizer_names, unit_tail
from ._base import MAX_BLOCKS, ArchConfig, StagedNet, arch, check_dims, int_tuple, stem_geometry
from ._registry import Family, build_variant, register_family, register_model

__all__ = ["ReActNet", "ReActNetConfig", "ReActBlock", "block_strides"]

# ReActNet-A: MobileNet-v1's 13 separable blocks, output channels of each
REACTNET_A_DIMS = (64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024)


def block_strides(stem_dim: int, dims: tuple[int, ...]) -> tuple[int, ...]:
    """ReActNet-A's rule: stride 2 wherever the channel count changes, except the first block
    (MobileNet-v1's 32 -> 64 block keeps the resolution)."""
    ins = (stem_dim, *dims[:-1])
    pairs = enumerate(zip(ins, dims, strict=True))
    return tuple(1 if i == 0 or cin == cout else 2 for i, (cin, cout) in pairs)


@dataclass
class ReActNetConfig(ArchConfig):
    """Everything that defines a ReActNet network. Defaults are ReActNet-A at 224x224; classes,
    input channels and dropout are :class:`~bimlp.models._base.ArchConfig`'s."""

    stem_dim: int = arch(32)  # channels of the full-precision stem
    dims: tuple[int, ...] = arch(REACTNET_A_DIMS)  # output channels of every block: = or 2x input
    strides: tuple[int, ...] | None = arch(None)  # per block, 1 or 2; None: :func:`block_strides`
    # the quantizers: sign / ApproxSign activations, scaled sign weights
    mode: str = arch("paper", choices=("paper",))
    binary_weights: bool = arch(True)  # False: real-valued weights, binary activations (step 1)
    stem_stride: int = arch(2)  # 2: 224 -> 112 (ReActNet-A); 1 for 32 px inputs

    def __post_init__(self) -> None:
        super().__post_init__()
        self.dims = int_tuple("dims", self.dims)
        if isinstance(self.stem_dim, bool) or not isinstance(self.stem_dim, int):
            raise ValueError(f"stem_dim must be an integer, got {self.stem_dim!r}")
        check_dims((self.stem_dim,), "stem_dim")
        check_dims(self.dims)
        if not self.dims or len(self.dims) > MAX_BLOCKS:
            raise ValueError(f"dims needs 1 to {MAX_BLOCKS} blocks, got {len(self.dims)}")
        ins = (self.stem_dim, *self.dims[:-1])
        bad = [i for i, (a, b) in enumerate(zip(ins, self.dims, strict=True)) if b not in (a, 2 * a)]
        if bad:
            raise ValueError(
                f"every block keeps or doubles its channels (ReActNet's duplicated 1x1 convs); "
                f"block {bad[0]} goes {ins[bad[0]]} -> {self.dims[bad[0]]}"
            )
        if self.strides is not None:
            self.strides = int_tuple("strides", self.strides)
            if len(self.strides) != len(self.dims) or any(s not in (1, 2) for s in self.strides):
                raise ValueError(f"strides needs one entry (1 or 2) per block "
                                 f"({len(self.dims)}), got {self.strides}")

    def block_strides(self) -> tuple[int, ...]:
        """The stride of every block: ``strides``, or ReActNet-A's rule when that is None."""
        return self.strides or block_strides(self.stem_dim, self.dims)


class ReActBlock(nn.Module):
    """One ReActNet-A block: a binary 3x3 unit (``C -> C``, stride 1 or 2) then a binary 1x1
    unit (``C -> C``, or two of them concatenated for ``C -> 2C``).

    ``y = RPReLU1(BN1(conv3x3(RSign1 x)) + pool(x))``;
    ``z = RPReLU2(BN2(conv1x1(RSign2 y)) + y)``, or for ``C -> 2C``
    ``z = RPReLU2(cat[BN2_1(pw1(RSign2 y)) + y, BN2_2(pw2(RSign2 y)) + y])``.
    """

    def __init__(self, cin: int, cout: int, stride: int, qa: str, qw: str) -> None:
        super().__init__()
        self.cin, self.cout, self.stride = cin, cout, stride
        self.move11 = LearnableBias(cin)
        self.binary_3x3 = BinaryConv2d(cin, cin, 3, stride=stride, padding=1,
                                       input_quantizer=qa, weight_quantizer=qw)
        self.bn1 = BatchNorm2d(cin)
        # ceil_mode: the same size as the stride-2 conv's output for odd inputs too
        self.pool = nn.AvgPool2d(2, 2, ceil_mode=True) if stride == 2 else nn.Identity()
        self.act1 = RPReLU(cin)
        self.move21 = LearnableBias(cin)
        if cout == cin:
            self.binary_pw = BinaryConv2d(cin, cout, 1, input_quantizer=qa, weight_quantizer=qw)
            self.bn2 = BatchNorm2d(cout)
        else:
            self.binary_pw_down1 = BinaryConv2d(cin, cin, 1, input_quantizer=qa,
                                                weight_quantizer=qw)
            self.binary_pw_down2 = BinaryConv2d(cin, cin, 1, input_quantizer=qa,
                                                weight_quantizer=qw)
            self.bn2_1 = BatchNorm2d(cin)
            self.bn2_2 = BatchNorm2d(cin)
        self.act2 = RPReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = unit_tail(self.binary_3x3(self.move11(x)), self.pool(x), self.bn1, self.act1)
        u = self.move21(y)
        if self.cout == self.cin:
            return unit_tail(self.binary_pw(u), y, self.bn2, self.act2)
        z = torch.cat([self.bn2_1(self.binary_pw_down1(u)) + y,
                       self.bn2_2(self.binary_pw_down2(u)) + y], dim=1)  # (B, 2C, H, W)
        return self.act2(z)

    def extra_repr(self) -> str:
        return f"{self.cin} -> {self.cout}, stride {self.stride}"


class Stem(nn.Module):
    """Full-precision Conv 3x3 stride 2 pad 1 (no bias) -> BatchNorm; 224 -> 112."""

    def __init__(self, in_chans: int, dim: int, stride: int) -> None:
        super().__init__()
        kernel, padding = stem_geometry(stride)
        self.proj = nn.Conv2d(in_chans, dim, kernel, stride=stride, padding=padding, bias=False)
        self.norm = BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class ReActNet(StagedNet):
    """The configurable ReActNet network (see :class:`ReActNetConfig`).

    ``network`` follows the shared layout of this package: stage 0, downsample 0, stage 1, ...,
    last stage, where every stride-2 block is a downsample and each run of stride-1 blocks
    between them is a stage (an ``nn.Sequential``; empty where two stride-2 blocks meet).
    ReActNet-A: five stages at 112, 56, 28, 14 and 7 px.
    """

    family = "reactnet"

    def __init__(self, config: ReActNetConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        self.pop_timm_args(overrides)
        cfg = dataclasses.replace(config or ReActNetConfig(), **overrides)
        self.config = cfg
        self.num_classes = cfg.num_classes
        self.num_features = cfg.dims[-1]
        self.mode = cfg.mode
        qa, qw = quantizer_names(cfg.mode, cfg.binary_weights)

        self.patch_embed = Stem(cfg.in_chans, cfg.stem_dim, cfg.stem_stride)
        network: list[nn.Module] = []
        stage: list[nn.Module] = []
        ins = (cfg.stem_dim, *cfg.dims[:-1])
        for cin, cout, stride in zip(ins, cfg.dims, cfg.block_strides(), strict=True):
            block = ReActBlock(cin, cout, stride, qa, qw)
            if stride == 1:
                stage.append(block)
            else:
                network += [nn.Sequential(*stage), block]
                stage = []
        network.append(nn.Sequential(*stage))
        self.network = nn.ModuleList(network)
        self.norm = nn.Identity()  # ReActNet has no norm before the pool
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.reset_classifier(cfg.num_classes)


# configs and entry points ---------------------------------------------------------------------
def _cfg(**kwargs: Any) -> dict[str, Any]:
    # ReActNet evaluates with Resize(256) + CenterCrop(224), bilinear, ImageNet mean / std
    return {
        "url": "", "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "crop_pct": 0.875, "interpolation": "bilinear", "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD, "first_conv": "patch_embed.proj", "classifier": "head",
        "license": "mit", "paper_ids": "arXiv:2003.03488",
        "paper_name": "ReActNet: Towards Precise Binary Neural Network with Generalized "
                      "Activation Functions",
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    "reactnet_a": _cfg(),
    "reactnet_a_xs": _cfg(input_size=(3, 32, 32), pool_size=(2, 2), crop_pct=1.0),
})

_VARIANTS: dict[str, dict[str, Any]] = {
    "reactnet_a": dict(stem_dim=32, dims=REACTNET_A_DIMS, stem_stride=2),
    # 32 px inputs: stem stride 1 (maps 32/16/8/4/2), every width halved: 1.69e6 OPs at 32x32,
    # between bimlp_xs (1.39e6) and the naive binary Wave-MLP-XS (2.78e6)
    "reactnet_a_xs": dict(stem_dim=16, dims=tuple(d // 2 for d in REACTNET_A_DIMS), stem_stride=1),
}


def _create_reactnet(variant: str, pretrained: bool = False, **kwargs: Any) -> ReActNet:
    hint = "train it with `bimlp train` (model.name=reactnet_a) and pass checkpoint="
    return build_variant(ReActNet, variant, _VARIANTS[variant], pretrained, hint, **kwargs)


@register_model
def reactnet_a(pretrained: bool = False, **kwargs: Any) -> ReActNet:
    """ReActNet-A: MobileNet-v1 layout, 13 binary blocks 32 -> 1024 channels (29.33 M params)."""
    return _create_reactnet("reactnet_a", pretrained, **kwargs)


@register_model
def reactnet_a_xs(pretrained: bool = False, **kwargs: Any) -> ReActNet:
    """ReActNet-A for 32 px inputs: stem stride 1, the same 13 blocks at half width (16 -> 512)."""
    return _create_reactnet("reactnet_a_xs", pretrained, **kwargs)


register_family(Family("reactnet", ReActNetConfig, _VARIANTS))
