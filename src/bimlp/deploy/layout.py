"""The packed layout of a BiMLP: a module tree of buffers whose state-dict names, shapes and
dtypes are the ``.bimlp`` artifact's tensors (see :mod:`bimlp.deploy.pack` for how they are folded
and :mod:`bimlp.deploy.artifact` for the file). It computes nothing: the runtime
(``bimlp_runtime``) reads these tensors and runs the network natively.

Every binary layer holds ``bits`` (packed signs), ``alpha`` (weight scale x BN scale), ``beta``
(BN shift + RPReLU's first bias, + the input's learnable bias for identity shortcuts), ``thresh``
(binarize ``sign(x + thresh)``, or in ``official`` mode ``round(clip(x + thresh, -1, 1))``) and
``act`` (PReLU slope, final shift); the channel MLP's first layer also ``res_params`` (its
shortcut's BN affine and RPReLU). In ``official`` mode the 1x7 / 7x1 token convs hold ``taps``
(their real-valued weights, the release's per-tap scales applied) instead of ``bits``, and
``alpha`` is the BN scale alone.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["BiMLPLayout", "BinaryLayout", "ReActNetLayout", "stem_geometry_of"]


def stem_geometry_of(cfg: dict[str, Any]) -> tuple[int, int, int]:
    """(kernel, stride, padding) of the stem: stride 4 is the release's 7x7 pad 2."""
    from ..models._base import stem_geometry

    stride = int(cfg.get("stem_stride", 4))
    kernel, padding = stem_geometry(stride)
    return kernel, stride, padding


class BinaryLayout(nn.Module):
    """Buffers of a packed binary layer (1x1, or a 1x7 / 7x1 token conv). ``real_taps``: the
    weights stay float32 (``taps``, (cin, kernel taps)) instead of packed bits."""

    def __init__(self, cin: int, cout: int, weight_numel: int, res_params: bool = False,
                 real_taps: bool = False) -> None:
        super().__init__()
        self.in_channels, self.out_channels = cin, cout
        self.weight_numel = 0 if real_taps else weight_numel  # binary weights
        self.register_buffer("bits", None if real_taps else torch.zeros((weight_numel + 7) // 8, dtype=torch.uint8))
        self.register_buffer("taps", torch.zeros(cin, weight_numel // cin) if real_taps else None)
        self.register_buffer("alpha", torch.ones(cout))
        self.register_buffer("beta", torch.zeros(cout))
        self.register_buffer("thresh", torch.zeros(cin))
        self.register_buffer("act", torch.tensor([[0.25] * cout, [0.0] * cout]))
        self.register_buffer("res_params", torch.zeros(4, cout) if res_params else None)


def conv1x1(cin: int, cout: int, res_params: bool = False) -> BinaryLayout:
    return BinaryLayout(cin, cout, cin * cout, res_params)


def token_conv(channels: int, pairs: int, real_taps: bool, taps: int = 7) -> BinaryLayout:
    return BinaryLayout(channels * pairs, channels, channels * pairs * taps, real_taps=real_taps)


def _has_shortcut(cin: int, cout: int, uni: bool) -> bool:
    return uni or cin == cout


class NormLayout(nn.Module):
    """An outer norm: BatchNorm folded to (scale, shift), or GroupNorm(1, C)'s (weight, bias)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("affine", torch.tensor([[1.0] * channels, [0.0] * channels]))


class MlpLayout(nn.Module):
    def __init__(self, cin: int, hidden: int, cout: int, uni: bool) -> None:
        super().__init__()
        self.fc1 = conv1x1(cin, hidden, res_params=_has_shortcut(cin, hidden, uni))
        self.fc2 = conv1x1(hidden, cout)


class PATMLayout(nn.Module):
    front = ("theta_h_conv", "theta_w_conv", "fc_h", "fc_w", "fc_c")

    def __init__(self, dim: int, uni: bool, real_taps: bool) -> None:
        super().__init__()
        for name in self.front + ("proj",):
            setattr(self, name, conv1x1(dim, dim))
        self.tfc_h = token_conv(dim, 2, real_taps)
        self.tfc_w = token_conv(dim, 2, real_taps)
        self.reweight = MlpLayout(dim, dim // 4, 3 * dim, uni)


class BlockLayout(nn.Module):
    def __init__(self, dim: int, mlp_ratio: float, uni: bool, multi_branch: bool, real_taps: bool) -> None:
        super().__init__()
        self.norm1 = NormLayout(dim)
        self.attn = PATMLayout(dim, uni, real_taps)
        self.norm2 = NormLayout(dim)
        self.mlp = MlpLayout(dim, int(dim * mlp_ratio), dim, uni)
        self.multi_branch = multi_branch
        if multi_branch:
            self.sfc_h = token_conv(dim, 1, real_taps)
            self.sfc_w = token_conv(dim, 1, real_taps)
            self.register_buffer("weight", torch.zeros(2))


class FloatConvLayout(nn.Module):
    """Full-precision conv with BatchNorm folded in (GroupNorm kept as ``norm.affine``), then
    RPReLU as (move1, slope, move2) when ``act``."""

    def __init__(self, cin: int, cout: int, kernel: int, group_norm: bool, act: bool = True) -> None:
        super().__init__()
        self.register_buffer("weight", torch.zeros(cout, cin, kernel, kernel))
        self.register_buffer("bias", torch.zeros(cout))
        self.norm = NormLayout(cout) if group_norm else None
        self.register_buffer("act", torch.zeros(3, cout) if act else None)


class DownsampleLayout(nn.Module):
    """BiMLP's 1x1 conv + RPReLU (the pooling has no tensors), or Wave-MLP's 3x3 stride-2 conv
    with its norm and no activation (``conv=True``)."""

    def __init__(self, cin: int, cout: int, group_norm: bool, conv: bool = False) -> None:
        super().__init__()
        self.proj = FloatConvLayout(cin, cout, 3 if conv else 1, group_norm, act=not conv)


class BiMLPLayout(nn.Module):
    """The packed tensors of a whole BiMLP, built from its packed configuration."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = cfg = dict(config)
        dims, depths, ratios = list(cfg["dims"]), list(cfg["depths"]), list(cfg["mlp_ratios"])
        downsample = cfg.get("downsample", "bimlp")
        if downsample not in ("bimlp", "wavemlp"):
            raise ValueError(f"downsample {downsample!r}: the runtime runs 'bimlp' and 'wavemlp'")
        mode = cfg.get("mode", "paper")
        if mode not in ("paper", "official"):
            raise ValueError(f"mode {mode!r}: the runtime runs 'paper' and 'official'")
        real_taps = mode == "official"
        group = cfg["norm"] == "group"
        uni, multi = cfg.get("uni_shortcut", True), cfg.get("multi_branch", True)
        kernel, _, _ = stem_geometry_of(cfg)
        self.stem = FloatConvLayout(cfg.get("in_chans", 3), dims[0], kernel, group)
        network: list[nn.Module] = []
        for i, (depth, dim) in enumerate(zip(depths, dims, strict=True)):
            network.append(nn.ModuleList([BlockLayout(dim, ratios[i], uni, multi, real_taps)
                                          for _ in range(depth)]))
            if i + 1 < len(dims):
                network.append(DownsampleLayout(dim, dims[i + 1], group, conv=downsample == "wavemlp"))
        self.network = nn.ModuleList(network)
        self.norm = NormLayout(dims[-1]) if group else None
        self.register_buffer("head_weight", torch.zeros(cfg["num_classes"], dims[-1]))
        self.register_buffer("head_bias", torch.zeros(cfg["num_classes"]))

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}

    def size_report(self) -> dict[str, int]:
        """Binary weight count, full-precision value count and the theoretical minimum in bytes
        (binary weights / 8 + 4 bytes per full-precision value)."""
        binary = sum(m.weight_numel for m in self.modules() if isinstance(m, BinaryLayout))
        fp = sum(t.numel() for k, t in self.state_dict().items() if not k.endswith(".bits"))
        return {"binary_weights": binary, "float_values": fp, "theoretical_bytes": binary // 8 + 4 * fp}


class ReActBlockLayout(nn.Module):
    """A ReActNet-A block: the binary 3x3 unit (``cin -> cin``, stride 1 or 2, padding 1) and the
    binary 1x1 unit (``cin -> cout``; for ``cout = 2 cin`` the two duplicated convs as one layer of
    ``2 cin`` outputs, the first ``cin`` rows from ``binary_pw_down1``)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.binary_3x3 = BinaryLayout(cin, cin, cin * cin * 9)
        self.binary_pw = conv1x1(cin, cout)


class ReActNetLayout(nn.Module):
    """The packed tensors of a ReActNet (``arch = "reactnet"`` in the configuration): the fp stem
    with BatchNorm folded in (no activation), the blocks, the classifier."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = cfg = dict(config)
        if cfg.get("pad_value") not in (-1, 1):
            raise ValueError(f"pad_value must be -1 or +1, got {cfg.get('pad_value')!r}")
        dims, stem_dim = list(cfg["dims"]), int(cfg["stem_dim"])
        kernel, _, _ = stem_geometry_of({"stem_stride": cfg.get("stem_stride", 2)})
        self.stem = FloatConvLayout(cfg.get("in_chans", 3), stem_dim, kernel, False, act=False)
        ins = [stem_dim, *dims[:-1]]
        self.blocks = nn.ModuleList([ReActBlockLayout(cin, cout) for cin, cout in zip(ins, dims, strict=True)])
        self.register_buffer("head_weight", torch.zeros(cfg["num_classes"], dims[-1]))
        self.register_buffer("head_bias", torch.zeros(cfg["num_classes"]))

    tensors = BiMLPLayout.tensors
    size_report = BiMLPLayout.size_report
