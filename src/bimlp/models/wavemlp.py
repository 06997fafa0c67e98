"""Wave-MLP: An Image Patch is a Wave: Phase-Aware Vision MLP.

Yehui Tang, Kai Han, Jianyuan Guo, Chang Xu, Yanxi Li, Chao Xu, Yunhe Wang, CVPR 2022
(arXiv 2111.12294).

The full-precision network BiMLP binarizes, used here as the distillation teacher and the float
baseline. Each token is a wave with an amplitude (a 1x1 conv of the features) and a phase
``theta`` (estimated per token); the phase-aware token mixing (PATM) mixes ``[a cos(theta);
a sin(theta)]`` along the rows (1x7) and the columns (7x1), adds a channel-only branch and
re-weights the three with a small MLP on globally pooled features.

Module, parameter and buffer names are those of the released PyTorch code, so the released
checkpoints (``WaveMLP_T.pth.tar``, ...) load strictly: :func:`load_wavemlp` reads one, infers
the architecture from its tensors and returns the model in eval mode.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath
from timm.models import generate_default_cfgs
from torch import nn

from ..checkpoint import CheckpointError, check_rank
from ..layers import BatchNorm2d, TokenConv2d
from ._base import (
    MAX_DEPTH,
    ConvDownsample,
    StagedConfig,
    StagedNet,
    arch,
    build_network,
    make_norm,
    stem_geometry,
)
from ._builder import model_from_checkpoint
from ._registry import Family, build_variant, register_family, register_model

__all__ = [
    "WaveMLP", "WaveMLPConfig", "WaveBlock", "PATM", "ConvMlp", "infer_wavemlp_config",
    "load_wavemlp",
]


@dataclass
class WaveMLPConfig(StagedConfig):
    """Everything that defines a Wave-MLP network. Defaults are Wave-MLP-T; depths, dims (the
    PATM re-weighter has dim // 4 channels), MLP ratios, outer norm, stem stride, classes, input
    channels and dropout rates are :class:`~bimlp.models._base.StagedConfig`'s."""

    downsample_norm: bool = arch(True)  # False: no norm after the stem and downsample convs (M, B)
    # theta from a 1x1 conv + bias (released T/S/M/B); "depthwise" is not ported
    mode: str = arch("fc", choices=("fc",))

    def __post_init__(self) -> None:
        super().__post_init__()
        if any(d < 4 for d in self.dims):
            raise ValueError(f"every dim must be at least 4 (PATM re-weighter), got {self.dims}")


class ConvMlp(nn.Module):
    """``fc2(GELU(fc1 x))``, 1x1 convs with bias: the channel MLP and the PATM re-weighter.
    (The release's dropout here is always 0, so there is none.)"""

    def __init__(self, cin: int, hidden: int, cout: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(cin, hidden, 1)
        self.act = nn.GELU()  # exact erf GELU, as released
        self.fc2 = nn.Conv2d(hidden, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _theta(dim: int) -> nn.Sequential:
    """Phase estimator ``ReLU(BN(conv1x1(x) + b))``. Always BatchNorm, whatever the outer norm;
    indices ``.0`` / ``.1`` are the released parameter names."""
    return nn.Sequential(nn.Conv2d(dim, dim, 1), BatchNorm2d(dim), nn.ReLU())


class PATM(nn.Module):
    """Phase-aware token mixing.

    ``h = tfc_h([fc_h(x) cos(theta_h); fc_h(x) sin(theta_h)])`` (grouped 2C -> C, 1x7), ``w``
    likewise along the columns (7x1), ``c = fc_c(x)``; the weights ``a = softmax_3(reweight(
    avgpool(h + w + c)))`` mix them, and ``proj(a0 h + a1 w + a2 c)`` is the output.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc_h = nn.Conv2d(dim, dim, 1, bias=False)  # amplitudes
        self.fc_w = nn.Conv2d(dim, dim, 1, bias=False)
        self.fc_c = nn.Conv2d(dim, dim, 1, bias=False)  # channel-only branch
        # output channel k reads input channels 2k and 2k + 1 of [a cos; a sin]
        # nn.Conv2d's parameters; on the fast path, C++ kernels (bimlp.layers.token_conv)
        self.tfc_h = TokenConv2d(2 * dim, dim, (1, 7), padding=(0, 3), groups=dim, bias=False)
        self.tfc_w = TokenConv2d(2 * dim, dim, (7, 1), padding=(3, 0), groups=dim, bias=False)
        self.reweight = ConvMlp(dim, dim // 4, 3 * dim)
        self.proj = nn.Conv2d(dim, dim, 1)
        self.theta_h_conv = _theta(dim)
        self.theta_w_conv = _theta(dim)

    @staticmethod
    def _wave(amplitude: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        # the complex token a * e^{i theta} unfolded into real channels: (B, 2C, H, W)
        return torch.cat([amplitude * torch.cos(theta), amplitude * torch.sin(theta)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        h = self.tfc_h(self._wave(self.fc_h(x), self.theta_h_conv(x)))  # (B, C, H, W)
        w = self.tfc_w(self._wave(self.fc_w(x), self.theta_w_conv(x)))
        ch = self.fc_c(x)
        pooled = (h + w + ch).mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        # re-weighter output channel 3c + k is branch k's weight for channel c
        a = self.reweight(pooled).reshape(b, c, 3).softmax(dim=2)  # (B, C, 3)
        a = a.permute(2, 0, 1).unsqueeze(-1).unsqueeze(-1)  # (3, B, C, 1, 1)
        return self.proj(h * a[0] + w * a[1] + ch * a[2])


class WaveBlock(nn.Module):
    """``x += DropPath(PATM(norm1 x))``; ``x += DropPath(mlp(norm2 x))``."""

    def __init__(self, dim: int, mlp_ratio: float, norm: str, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = make_norm(norm, dim)
        self.attn = PATM(dim)
        self.norm2 = make_norm(norm, dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Stem: Conv 7x7 stride 4 pad 2 (+bias) -> norm (or nothing); 224 -> 56. Other strides
    scale kernel and padding (:func:`stem_geometry`)."""

    def __init__(self, in_chans: int, dim: int, norm: str | None, stride: int = 4) -> None:
        super().__init__()
        kernel, padding = stem_geometry(stride)
        self.proj = nn.Conv2d(in_chans, dim, kernel, stride=stride, padding=padding)
        self.norm = make_norm(norm, dim) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class WaveMLP(StagedNet):
    """The configurable Wave-MLP network (see :class:`WaveMLPConfig`).

    ``network`` is the released flat list: stage 0, downsample 0, stage 1, ..., last stage;
    each downsample is a Conv 3x3 stride 2 (+bias) -> norm.
    """

    family = "wavemlp"

    def __init__(self, config: WaveMLPConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        self.pop_timm_args(overrides)
        cfg = dataclasses.replace(config or WaveMLPConfig(), **overrides)
        self.config = cfg
        self.num_classes = cfg.num_classes
        self.num_features = cfg.dims[-1]
        edge_norm = cfg.norm if cfg.downsample_norm else None

        self.patch_embed = PatchEmbed(cfg.in_chans, cfg.dims[0], edge_norm, cfg.stem_stride)
        self.network = build_network(
            cfg.depths, cfg.dims, cfg.drop_path_rate,
            block=lambda i, dim, dp: WaveBlock(dim, cfg.mlp_ratios[i], cfg.norm, dp),
            downsample=lambda cin, cout: ConvDownsample(cin, cout, edge_norm),
        )
        self.norm = make_norm(cfg.norm, cfg.dims[-1])  # present even without downsample_norm
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.reset_classifier(cfg.num_classes)
        self.init_weights()  # as released: truncated-normal classifier, PyTorch defaults elsewhere


# checkpoints ----------------------------------------------------------------------------------
def _require(
    state: Mapping[str, torch.Tensor], key: str, source: str, ndim: int | None = None
) -> torch.Tensor:
    if key not in state:
        raise CheckpointError(f"{source}: not a Wave-MLP state dict (no {key!r})")
    return state[key] if ndim is None else check_rank(state[key], key, ndim, source)


def _indices(state: Mapping[str, Any], prefix: str) -> list[int]:
    """Sorted integer names directly under ``prefix`` (e.g. the blocks of ``network.0.``)."""
    found = set()
    for key in state:
        if key.startswith(prefix):
            head = key[len(prefix):].split(".", 1)[0]
            if head.isdigit():
                found.add(int(head))
    return sorted(found)


def _ratio_for(dim: int, hidden: int) -> float:
    """A ratio with ``int(dim * ratio) == hidden`` (the released rule for the hidden width)."""
    ratio = hidden / dim
    while int(dim * ratio) < hidden:  # hidden / dim may round down by an ulp
        ratio = math.nextafter(ratio, math.inf)
    return ratio


def infer_wavemlp_config(
    state: Mapping[str, torch.Tensor], source: str = "state dict"
) -> dict[str, Any]:
    """Architecture fields of :class:`WaveMLPConfig` read off a Wave-MLP state dict.

    Stages are the even entries of ``network`` (downsamples the odd ones), the depth of a stage
    is its number of blocks, dims come from ``attn.fc_c``, MLP ratios from ``mlp.fc1``, the norm
    kind from whether the final ``norm`` has running statistics, ``downsample_norm`` from whether
    the stem has a norm, classes from ``head`` (0 when there is none).

    Raises:
        CheckpointError: the tensors are not those of a Wave-MLP this module can build.
    """
    stem = _require(state, "patch_embed.proj.weight", source, 4)  # (C0, in_chans, 7, 7)
    _require(state, "norm.weight", source)
    entries = _indices(state, "network.")
    if not entries or entries != list(range(len(entries))) or len(entries) % 2 == 0:
        raise CheckpointError(
            f"{source}: expected network.0 .. network.{{2k}} alternating stages and downsamples, "
            f"found entries {entries}"
        )
    depths, dims, ratios = [], [], []
    for i in entries[0::2]:
        blocks = _indices(state, f"network.{i}.")
        if not blocks:
            raise CheckpointError(f"{source}: network.{i} should be a stage of blocks, has none")
        first = f"network.{i}.{blocks[0]}.attn"
        dim = _require(state, f"{first}.fc_c.weight", source, 4).shape[0]
        theta = _require(state, f"{first}.theta_h_conv.0.weight", source, 4)
        if theta.shape[1] != dim:
            raise CheckpointError(
                f"{source}: depthwise theta convs (the release's WaveMLP_*_dw) are not supported"
            )
        hidden = {
            _require(state, f"network.{i}.{j}.mlp.fc1.weight", source, 4).shape[0]
            for j in blocks
        }
        if len(hidden) != 1:
            raise CheckpointError(
                f"{source}: the blocks of network.{i} differ in MLP width {sorted(hidden)}"
            )
        if blocks[-1] >= MAX_DEPTH:  # refused before any block is built
            odd = [f"network.{i}.{j}.*" for j in blocks if j >= MAX_DEPTH]
            raise CheckpointError(
                f"{source}: unexpected {', '.join(odd[:12])}: a stage has at most {MAX_DEPTH} "
                "blocks"
            )
        depths.append(blocks[-1] + 1)  # a gap in the blocks is reported as missing keys
        dims.append(dim)
        ratios.append(_ratio_for(dim, hidden.pop()))
    for i in entries[1::2]:
        _require(state, f"network.{i}.proj.weight", source)
    head = state.get("head.weight")
    if head is not None:
        check_rank(head, "head.weight", 2, source)
    return {
        "depths": depths,
        "dims": dims,
        "mlp_ratios": ratios,
        "num_classes": int(head.shape[0]) if head is not None else 0,
        "in_chans": int(stem.shape[1]),
        "norm": "batch" if "norm.running_mean" in state else "group",
        "downsample_norm": "patch_embed.norm.weight" in state,
    }


def load_wavemlp(path: str | Path) -> WaveMLP:
    """A released (or our own) Wave-MLP checkpoint as a model in eval mode, loaded strictly.

    Reads ``WaveMLP_T.pth.tar``-style training checkpoints (their ``state_dict``; optimizer state,
    the EMA copy and the ``args`` Namespace are ignored), bare state dicts and our safetensors
    files; the architecture (depths, dims, MLP ratios, norm kind, downsample norm, classes) comes
    from the file itself, and the matching variant is built (``wavemlp_s`` for a Wave-MLP-S file).

    Raises:
        bimlp.checkpoint.CheckpointError: the file cannot be read safely, or is not a Wave-MLP.
    """
    return model_from_checkpoint(path, family="wavemlp")


# configs and entry points ---------------------------------------------------------------------
def _cfg(**kwargs: Any) -> dict[str, Any]:
    # the released default_cfg: bicubic, crop 0.9 (T/S/M), which its validation script uses
    return {
        "url": "", "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "crop_pct": 0.9, "interpolation": "bicubic", "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD, "first_conv": "patch_embed.proj", "classifier": "head",
        "paper_ids": "arXiv:2111.12294",
        "paper_name": "An Image Patch is a Wave: Phase-Aware Vision MLP",
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    **{n: _cfg() for n in ("wavemlp_t", "wavemlp_s", "wavemlp_m")},
    "wavemlp_xs": _cfg(input_size=(3, 32, 32), pool_size=(2, 2), crop_pct=1.0),
})

_VARIANTS: dict[str, dict[str, Any]] = {
    "wavemlp_t": dict(depths=(2, 2, 4, 2), dims=(64, 128, 320, 512), mlp_ratios=4, norm="batch"),
    "wavemlp_s": dict(depths=(2, 3, 10, 3), dims=(64, 128, 320, 512), mlp_ratios=4, norm="group"),
    "wavemlp_m": dict(depths=(3, 4, 18, 3), dims=(64, 128, 320, 512), mlp_ratios=(8, 8, 4, 4),
                      norm="group", downsample_norm=False),
    # 28-32 px inputs: stem stride 2, maps 16/8/4/2 at 32 px (14/7/4/2 at 28)
    "wavemlp_xs": dict(depths=(1, 1, 2, 1), dims=(32, 64, 96, 128), mlp_ratios=4, norm="batch",
                       stem_stride=2),
}


def _create_wavemlp(variant: str, pretrained: bool = False, **kwargs: Any) -> WaveMLP:
    hint = ("download the released WaveMLP_*.pth.tar and pass checkpoint= to bimlp.create_model "
            "(or use bimlp.load_wavemlp)")
    return build_variant(WaveMLP, variant, _VARIANTS[variant], pretrained, hint, **kwargs)


@register_model
def wavemlp_t(pretrained: bool = False, **kwargs: Any) -> WaveMLP:
    """Wave-MLP-T: depths 2-2-4-2, dims 64-128-320-512, BatchNorm (17.19 M params)."""
    return _create_wavemlp("wavemlp_t", pretrained, **kwargs)


@register_model
def wavemlp_s(pretrained: bool = False, **kwargs: Any) -> WaveMLP:
    """Wave-MLP-S: depths 2-3-10-3, dims 64-128-320-512, GroupNorm(1, C) (30.71 M params)."""
    return _create_wavemlp("wavemlp_s", pretrained, **kwargs)


@register_model
def wavemlp_m(pretrained: bool = False, **kwargs: Any) -> WaveMLP:
    """Wave-MLP-M: depths 3-4-18-3, MLP ratios 8-8-4-4, GroupNorm, no stem/downsample norm."""
    return _create_wavemlp("wavemlp_m", pretrained, **kwargs)


@register_model
def wavemlp_xs(pretrained: bool = False, **kwargs: Any) -> WaveMLP:
    """Wave-MLP-XS for 28-32 px inputs: depths 1-1-2-1, dims 32-64-96-128, stem stride 2."""
    return _create_wavemlp("wavemlp_xs", pretrained, **kwargs)


register_family(Family("wavemlp", WaveMLPConfig, _VARIANTS, infer_config=infer_wavemlp_config))
