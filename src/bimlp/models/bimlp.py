"""BiMLP: Compact Binary Architectures for Vision Multi-Layer Perceptrons.

Yixing Xu, Xinghao Chen, Yunhe Wang, NeurIPS 2022 (arXiv 2212.14158).

A binary Wave-MLP: every token- and channel-mixing FC (a 1x1 conv) and the 1x7 / 7x1 token convs
are binary; capacity comes back through multi-branch binary (MBB) blocks, the Uni-shortcut around
every binary layer, and full-precision cheap downsampling. Module and parameter names follow the
released MindSpore code, so its checkpoints map onto this model tag by tag (``convert/official``).

Two numerical modes (``mode=``): ``paper`` (exact ±1 activations, per-output-channel weight
scales; used for training) and ``official`` (the release's ternary activations and per-tap
weight scales; used to reproduce the released checkpoints).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath
from timm.models import generate_default_cfgs
from torch import nn

from ..checkpoint import save_weights
from ..layers import (
    MODES,
    BatchNorm2d,
    BinaryConv2d,
    LearnableBias,
    RPReLU,
    UniShortcut,
    binary_unit,
    quantizer_names,
    same_max_pool,
    unit_tail,
)
from ._base import (
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
    "BiMLP", "BiMLPConfig", "BinaryMlp", "BinaryPATM", "BiMLPBlock", "checkpoint_filter_fn",
    "convert_official", "load_official", "make_norm",
]


@dataclass
class BiMLPConfig(StagedConfig):
    """Everything that defines a BiMLP network. Defaults are BiMLP-S; depths, dims, MLP ratios,
    outer norm, stem stride, classes, input channels and dropout rates are
    :class:`~bimlp.models._base.StagedConfig`'s."""

    # paper (true 1-bit) | official (released numerics, ternary activations)
    mode: str = arch("paper", choices=MODES)
    binary_weights: bool = arch(True)  # False: real-valued weights, binary activations (step 1)
    uni_shortcut: bool = arch(True)  # False: shortcuts only where shapes already match (ablation)
    multi_branch: bool = arch(True)  # False: MBB block 2 is the channel MLP alone (ablation)
    # bimlp: fp 1x1 conv + SAME max-pool mix | wavemlp: fp 3x3/2 conv
    downsample: str = arch("bimlp", choices=("bimlp", "wavemlp"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if any(d % 4 for d in self.dims):
            raise ValueError(f"every dim must be divisible by 4 (PATM re-weighting), got {self.dims}")


@dataclass
class _Binary:
    """How binary convs of one model are built (resolved from the config once)."""

    input_quantizer: str
    weight_quantizer: str
    uni_shortcut: bool = True

    @classmethod
    def from_config(cls, cfg: BiMLPConfig) -> _Binary:
        qa, qw = quantizer_names(cfg.mode, cfg.binary_weights)
        return cls(qa, qw, cfg.uni_shortcut)

    def conv(self, cin: int, cout: int, kernel=1, padding=0, groups: int = 1) -> BinaryConv2d:
        return BinaryConv2d(
            cin, cout, kernel, padding=padding, groups=groups,
            input_quantizer=self.input_quantizer, weight_quantizer=self.weight_quantizer,
        )


class BinaryMlp(nn.Module):
    """Channel Bi-MLP ``Mlp(C_in, C_hid, C_out)``: two binary 1x1 layers with Uni-shortcuts.

    ``s1 = R1(BN0(S(x)))``, ``h = R2(BN1(fc1(move1 x)) + s1)``, ``y = R3(BN2(fc2(move2 h)) + S(h))``.
    The first shortcut starts from the unshifted ``x``. Without Uni-shortcut, a shortcut only
    exists where the channel count does not change.
    """

    def __init__(self, cin: int, hidden: int, cout: int, b: _Binary) -> None:
        super().__init__()
        self.move1 = LearnableBias(cin)
        self.fc1 = b.conv(cin, hidden)
        self.norm1 = BatchNorm2d(hidden)
        self.act2 = RPReLU(hidden)
        self.move2 = LearnableBias(hidden)
        self.fc2 = b.conv(hidden, cout)
        self.norm2 = BatchNorm2d(cout)
        self.act3 = RPReLU(cout)
        self.shortcut1 = UniShortcut(cin, hidden) if b.uni_shortcut or cin == hidden else None
        self.shortcut2 = UniShortcut(hidden, cout) if b.uni_shortcut or hidden == cout else None
        if self.shortcut1 is not None:
            self.norm0 = BatchNorm2d(hidden)
            self.act1 = RPReLU(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = None
        if self.shortcut1 is not None:
            s1 = unit_tail(self.shortcut1(x), None, self.norm0, self.act1)
        h = binary_unit(x, self.move1, self.fc1, self.norm1, self.act2, s=s1)
        # the second shortcut starts from the unshifted h
        return binary_unit(h, self.move2, self.fc2, self.norm2, self.act3,
                           shortcut=self.shortcut2, shifted=False)


class BinaryPATM(nn.Module):
    """MBB block 1: the binary phase-aware token mixing (PATM) of Wave-MLP.

    Every binary unit is ``R(BN(BiConv(u)) + S(u))`` with ``u`` the shifted input. The h/w token
    mixers are grouped 2C -> C convs (1x7 and 7x1) on ``[a cos(theta); a sin(theta)]``, whose
    output channel k reads input channels 2k and 2k+1 -- the pair-mean Uni-shortcut mirrors that.
    """

    def __init__(self, dim: int, b: _Binary) -> None:
        super().__init__()
        for name in ("fc_h", "fc_w", "fc_c", "proj", "theta_h_conv", "theta_w_conv"):
            setattr(self, name, b.conv(dim, dim))
        for name in ("move_fch", "move_fcw", "move_fcc", "move_proj", "move_thetah", "move_thetaw"):
            setattr(self, name, LearnableBias(dim))
        for name in ("fc_h_bn", "fc_w_bn", "theta_h_bn", "theta_w_bn", "norm_c", "norm_h",
                     "norm_w", "norm_proj"):
            setattr(self, name, BatchNorm2d(dim))
        for name in ("fc_h_act", "fc_w_act", "theta_h_act", "theta_w_act", "act_c", "act_h",
                     "act_w", "act_proj"):
            setattr(self, name, RPReLU(dim))
        self.move_tfch = LearnableBias(2 * dim)
        self.move_tfcw = LearnableBias(2 * dim)
        self.tfc_h = b.conv(2 * dim, dim, (1, 7), padding=(0, 3), groups=dim)
        self.tfc_w = b.conv(2 * dim, dim, (7, 1), padding=(3, 0), groups=dim)
        self.tfc_shortcut = UniShortcut(2 * dim, dim) if b.uni_shortcut else None
        self.reweight = BinaryMlp(dim, dim // 4, 3 * dim, b)

    @staticmethod
    def _unit(z: torch.Tensor, move: nn.Module, conv: nn.Module, bn: nn.Module, act: nn.Module
              ) -> torch.Tensor:
        # same-shape binary unit, identity shortcut on the shifted input u = move(z)
        return binary_unit(z, move, conv, bn, act, shortcut="identity")

    def _token_mix(self, z, move, conv, bn, act, theta, tfc_move, tfc, tfc_bn, tfc_act):
        amp = self._unit(z, move, conv, bn, act)
        wave = torch.cat([amp * torch.cos(theta), amp * torch.sin(theta)], dim=1)  # (B, 2C, H, W)
        return binary_unit(wave, tfc_move, tfc, tfc_bn, tfc_act, shortcut=self.tfc_shortcut)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        b, c = z.shape[:2]
        theta_h = self._unit(z, self.move_thetah, self.theta_h_conv, self.theta_h_bn,
                             self.theta_h_act)
        theta_w = self._unit(z, self.move_thetaw, self.theta_w_conv, self.theta_w_bn,
                             self.theta_w_act)
        h = self._token_mix(z, self.move_fch, self.fc_h, self.fc_h_bn, self.fc_h_act, theta_h,
                            self.move_tfch, self.tfc_h, self.norm_h, self.act_h)
        w = self._token_mix(z, self.move_fcw, self.fc_w, self.fc_w_bn, self.fc_w_act, theta_w,
                            self.move_tfcw, self.tfc_w, self.norm_w, self.act_w)
        c_ = self._unit(z, self.move_fcc, self.fc_c, self.norm_c, self.act_c)
        g = (h + w + c_ + z).mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        # reweight output channel 3c + k is branch k's weight for channel c
        a = self.reweight(g).reshape(b, c, 3).softmax(dim=2)
        a = a.permute(2, 0, 1).unsqueeze(-1).unsqueeze(-1)  # (3, B, C, 1, 1)
        m = a[0] * h + a[1] * w + a[2] * c_ + z
        return self._unit(m, self.move_proj, self.proj, self.norm_proj, self.act_proj)


class BiMLPBlock(nn.Module):
    """One BiMLP block: MBB 1 (binary PATM) and MBB 2 (channel MLP + 1x7 / 7x1 branches).

    ``x += DropPath(PATM(norm1 x))``; ``x += DropPath(b0 * B_h + b1 * B_w + (1 - b0 - b1) * mlp)``
    with ``(b0, b1)`` the learnable ``weight`` (init 0). ``multi_branch=False`` keeps the MLP alone.
    """

    def __init__(self, dim: int, mlp_ratio: float, norm: str, b: _Binary, multi_branch: bool,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = make_norm(norm, dim)
        self.attn = BinaryPATM(dim, b)
        self.norm2 = make_norm(norm, dim)
        self.mlp = BinaryMlp(dim, int(dim * mlp_ratio), dim, b)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.multi_branch = multi_branch
        if multi_branch:
            self.move_h = LearnableBias(dim)
            self.move_w = LearnableBias(dim)
            self.sfc_h = b.conv(dim, dim, (1, 7), padding=(0, 3), groups=dim)
            self.sfc_w = b.conv(dim, dim, (7, 1), padding=(3, 0), groups=dim)
            self.norm_h = BatchNorm2d(dim)
            self.norm_w = BatchNorm2d(dim)
            self.act1 = RPReLU(dim)
            self.act2 = RPReLU(dim)
            self.weight = nn.Parameter(torch.zeros(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        z = self.norm2(x)
        out = self.mlp(z)
        if self.multi_branch:
            bh = binary_unit(z, self.move_h, self.sfc_h, self.norm_h, self.act1,
                             shortcut="identity")
            bw = binary_unit(z, self.move_w, self.sfc_w, self.norm_w, self.act2,
                             shortcut="identity")
            b0, b1 = self.weight[0], self.weight[1]
            out = b0 * bh + b1 * bw + (1 - b0 - b1) * out
        return x + self.drop_path(out)


class PatchEmbed(nn.Module):
    """Stem: full-precision Conv 7x7 stride 4 pad 2 (+bias) -> norm -> RPReLU; 224 -> 56.
    Other strides scale kernel and padding (:func:`stem_geometry`)."""

    def __init__(self, in_chans: int, dim: int, norm: str, stride: int = 4) -> None:
        super().__init__()
        kernel, padding = stem_geometry(stride)
        self.proj = nn.Conv2d(in_chans, dim, kernel, stride=stride, padding=padding)
        self.norm = make_norm(norm, dim)
        self.act = RPReLU(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return unit_tail(self.proj(x), None, self.norm, self.act)


class PoolDownsample(nn.Module):
    """BiMLP's cheap full-precision downsampling: 1x1 conv -> norm -> RPReLU, then the mean of
    SAME max-pools with kernels 2, 3, 5, 7 and stride 2 (output ``ceil(H / 2)``)."""

    kernels = (2, 3, 5, 7)

    def __init__(self, cin: int, cout: int, norm: str) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, 1)
        self.norm = make_norm(norm, cout)
        self.act = RPReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = unit_tail(self.proj(x), None, self.norm, self.act)
        return sum(same_max_pool(x, k, 2) for k in self.kernels) / len(self.kernels)


class BiMLP(StagedNet):
    """The configurable BiMLP network (see :class:`BiMLPConfig`).

    ``network`` is the release's flat list: stage 0, downsample 0, stage 1, ..., last stage.
    """

    family = "bimlp"

    def __init__(self, config: BiMLPConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        self.pop_timm_args(overrides)
        cfg = dataclasses.replace(config or BiMLPConfig(), **overrides)  # validates
        self.config = cfg
        self.num_classes = cfg.num_classes
        self.num_features = cfg.dims[-1]
        self.mode = cfg.mode
        b = _Binary.from_config(cfg)

        self.patch_embed = PatchEmbed(cfg.in_chans, cfg.dims[0], cfg.norm, cfg.stem_stride)
        self.network = build_network(
            cfg.depths, cfg.dims, cfg.drop_path_rate,
            block=lambda i, dim, dp: BiMLPBlock(dim, cfg.mlp_ratios[i], cfg.norm, b, cfg.multi_branch, dp),
            downsample=lambda cin, cout: (
                PoolDownsample(cin, cout, cfg.norm) if cfg.downsample == "bimlp"
                else ConvDownsample(cin, cout, cfg.norm)
            ),
        )
        self.norm = make_norm(cfg.norm, cfg.dims[-1])
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.reset_classifier(cfg.num_classes)
        self.init_weights()


# configs and entry points ---------------------------------------------------------------------
def _cfg(**kwargs: Any) -> dict[str, Any]:
    # The release evaluates with Resize(256) + CenterCrop(224), bilinear (its own default_cfg,
    # crop 0.9 bicubic, is never used), so that is what we declare.
    return {
        "url": "", "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "crop_pct": 0.875, "interpolation": "bilinear", "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD, "first_conv": "patch_embed.proj", "classifier": "head",
        "license": "apache-2.0", "paper_ids": "arXiv:2212.14158",
        "paper_name": "BiMLP: Compact Binary Architectures for Vision Multi-Layer Perceptrons",
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    "bimlp_s": _cfg(), "bimlp_m": _cfg(),
    "bimlp_xs": _cfg(input_size=(3, 32, 32), pool_size=(2, 2), crop_pct=1.0),
})

_VARIANTS: dict[str, dict[str, Any]] = {
    "bimlp_s": dict(depths=(2, 2, 4, 2), dims=(64, 128, 320, 512), mlp_ratios=4, norm="batch"),
    "bimlp_m": dict(depths=(2, 3, 10, 3), dims=(64, 128, 320, 512), mlp_ratios=4, norm="group"),
    # 28-32 px inputs: stem stride 2, maps 16/8/4/2 at 32 px (14/7/4/2 at 28)
    "bimlp_xs": dict(depths=(1, 1, 2, 1), dims=(32, 64, 96, 128), mlp_ratios=4, norm="batch",
                     stem_stride=2),
}


def _create_bimlp(variant: str, pretrained: bool = False, **kwargs: Any) -> BiMLP:
    hint = "convert the official .ckpt with `bimlp convert` and pass checkpoint= to bimlp.create_model"
    return build_variant(BiMLP, variant, _VARIANTS[variant], pretrained, hint, **kwargs)


@register_model
def bimlp_s(pretrained: bool = False, **kwargs: Any) -> BiMLP:
    """BiMLP-S: depths 2-2-4-2, dims 64-128-320-512, BatchNorm outer norms (15.84 M params)."""
    return _create_bimlp("bimlp_s", pretrained, **kwargs)


@register_model
def bimlp_m(pretrained: bool = False, **kwargs: Any) -> BiMLP:
    """BiMLP-M: depths 2-3-10-3, dims 64-128-320-512, GroupNorm(1, C) outer norms (29.69 M)."""
    return _create_bimlp("bimlp_m", pretrained, **kwargs)


@register_model
def bimlp_xs(pretrained: bool = False, **kwargs: Any) -> BiMLP:
    """BiMLP-XS for 28-32 px inputs: depths 1-1-2-1, dims 32-64-96-128, stem stride 2."""
    return _create_bimlp("bimlp_xs", pretrained, **kwargs)


# checkpoints ----------------------------------------------------------------------------------
def checkpoint_filter_fn(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Remap a checkpoint onto this module tree. The release's module names are ours (the
    MindSpore reader already speaks PyTorch's parameter names), so what is left is BatchNorm's
    ``num_batches_tracked``: MindSpore has no such counter, and it starts at 0."""
    out = dict(state)
    device = next(iter(state.values())).device if state else torch.device("cpu")
    for key, value in model.state_dict().items():
        if key.endswith(".num_batches_tracked") and key not in out:
            out[key] = torch.zeros(value.shape, dtype=value.dtype, device=device)
    return out


register_family(Family("bimlp", BiMLPConfig, _VARIANTS, checkpoint_filter_fn=checkpoint_filter_fn))


def load_official(path: str | Path, mode: str = "official") -> BiMLP:
    """The BiMLP an official ``.ckpt`` describes (``bimlp_s`` or ``bimlp_m``, or any other
    configuration its tags and shapes show), every tensor loaded strictly, in eval mode.
    ``mode="official"`` reproduces the release's numerics (ternary activations)."""
    return model_from_checkpoint(path, family="bimlp", mode=mode)


def convert_official(src: str | Path, dst: str | Path) -> Path:
    """Convert an official ``.ckpt`` to our safetensors file (weights + configuration, with
    ``mode="official"`` as the stored default; pass ``mode="paper"`` to ``create_model`` to
    override). The tensors are loaded into the model first, so a checkpoint that does not fit
    is never written out."""
    model = load_official(src)
    return save_weights(model, dst, config=model.config.to_dict(), family="bimlp")
