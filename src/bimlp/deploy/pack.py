"""Packing a trained BiMLP: an explicit function that returns a new module tree.

:func:`pack_weights` folds every binary unit ``R(BN(BiConv(x + b)) + S(x + b))`` into the buffers
of a :class:`~bimlp.deploy.layout.BinaryLayout` (packed sign bits + per-channel ``alpha``,
``beta``, ``thresh``, ``act``), BatchNorm into the full-precision convs and the classifier, and
leaves the input model untouched. :func:`bimlp.deploy.pack_model` (in ``artifact.py``) hands
those tensors to the runtime (``bimlp_runtime``) and returns a
:class:`~bimlp.deploy.runtime.PackedBiMLP` that runs them.

Bit format of binary weights (``bits`` buffers, also in the ``.bimlp`` artifact): the signs of the
weight flattened in PyTorch's ``(out, in/groups, kh, kw)`` row-major order form one bit stream; bit
``i`` of the stream is bit ``i % 8`` (least significant first) of byte ``i // 8``; a set bit means
the weight is negative (sign -1), a clear bit means sign +1 (sign(0) = +1); the last byte is padded
with zero bits. Nothing else is stored for a binary weight: its magnitude is the per-output-channel
scale ``mean|W|``, folded into ``alpha``.

``official`` mode (the released checkpoints' numerics) packs the same way, with two differences the
runtime reads from the artifact header: activations are ternary, ``round(clip(x + thresh, -1, 1))``
(the runtime encodes them as sign and nonzero bit planes), and the 1x7 / 7x1 token convs keep
their real-valued weights (``taps``: the release's per-tap scale times the sign, which for the
depthwise ``sfc_*`` is the weight itself).
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import BinaryConv2d, LearnableBias, RPReLU
from ..models.reactnet import ReActBlock
from .layout import (
    BiMLPLayout,
    BinaryLayout,
    BlockLayout,
    DownsampleLayout,
    FloatConvLayout,
    MlpLayout,
    NormLayout,
    PATMLayout,
    ReActNetLayout,
)
from .simulate import check_packable

__all__ = ["pack_weights", "pack_bits", "unpack_bits", "packed_config"]

_BYTE_SHIFTS = torch.arange(8, dtype=torch.uint8)


def pack_bits(negative: torch.Tensor) -> torch.Tensor:
    """Flat uint8 bit stream of a bool tensor (True = -1), LSB first, zero-padded last byte."""
    flat = negative.reshape(-1).to(torch.uint8)
    flat = torch.nn.functional.pad(flat, (0, (-flat.numel()) % 8))
    return (flat.view(-1, 8) << _BYTE_SHIFTS).sum(1, dtype=torch.uint8)


def unpack_bits(data: torch.Tensor, count: int) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: the first ``count`` bits as a bool tensor."""
    bits = (data.to(torch.uint8).unsqueeze(1) >> _BYTE_SHIFTS) & 1
    return bits.reshape(-1)[:count].bool()


# The value the runtime pads a binary 3x3 conv's packed input with (bit 0 = +1). The PyTorch model
# zero-pads the already-signed input, so padded taps add nothing; the runtime subtracts
# pad_value * sum of those taps' weight signs, which makes any pad value exact.
REACT_PAD_VALUE = 1


def packed_config(model: nn.Module) -> dict:
    """The architecture fields of the model's config (``BiMLPConfig`` / ``ReActNetConfig``, where
    they are defined) that the packed model needs: all but ``binary_weights``, which packing
    requires to be on. A ReActNet's also name the arch, its resolved strides and the pad value."""
    cfg = model.config.arch_dict()
    cfg.pop("binary_weights", None)
    if getattr(model, "family", "bimlp") == "reactnet":
        cfg.update(arch="reactnet", strides=list(model.config.block_strides()), pad_value=REACT_PAD_VALUE)
    return cfg


# folding helpers ------------------------------------------------------------------------------
def _vec(t: torch.Tensor) -> torch.Tensor:
    return t.detach().reshape(-1).to(torch.float64)


def _bn(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval BatchNorm as (scale, shift) in float64."""
    scale = _vec(bn.weight) / torch.sqrt(_vec(bn.running_var) + bn.eps)
    return scale, _vec(bn.bias) - _vec(bn.running_mean) * scale


def _rprelu(act: RPReLU) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _vec(act.move1.bias), _vec(act.act.weight), _vec(act.move2.bias)


def _set(buf: torch.Tensor, value: torch.Tensor) -> None:
    buf.copy_(value.reshape(buf.shape).to(buf.dtype))


def _signs_and_scale(conv: BinaryConv2d, name: str = "binary conv") -> tuple[torch.Tensor, torch.Tensor]:
    """(negative signs, per-output-channel magnitude) of the weight the layer really uses: in both
    modes every entry of an output channel must be +-scale (a zero weight, official mode's
    sign(0) = 0, has no 1-bit code)."""
    q = conv.quantized_weight().detach()  # float32, exactly what the model multiplies by
    scale = q.abs().flatten(1).amax(1)
    if not torch.equal(q.abs(), scale.view(-1, *([1] * (q.dim() - 1))).expand_as(q)):
        bad = int((q.abs() != scale.view(-1, *([1] * (q.dim() - 1)))).flatten(1).any(1).nonzero()[0])
        raise ValueError(
            f"{name} (weight {tuple(q.shape)}): output channel {bad} has weights of different "
            "magnitudes (an exact zero weight, sign(0) = 0 in official mode?); it has no 1-bit encoding"
        )
    return q < 0, scale


def _fill_binary(dst, conv: BinaryConv2d, bn: nn.BatchNorm2d, act: RPReLU,
                 move: LearnableBias | None, fold_move: bool) -> None:
    """alpha = mean|W| * bn_scale; beta = bn_shift + act.move1 (+ move bias when the shortcut is
    the shifted input itself); thresh = move bias; act = (slope, move2). A layout with ``taps``
    (official token convs) keeps the real-valued weight there and alpha = bn_scale."""
    w = conv.weight.detach()
    bn_scale, bn_shift = _bn(bn)
    m1, slope, m2 = _rprelu(act)
    b = _vec(move.bias) if move is not None else torch.zeros(w.shape[1] * conv.groups, dtype=torch.float64)
    if dst.taps is not None:
        _set(dst.taps, conv.quantized_weight().detach().reshape(dst.taps.shape))
        _set(dst.alpha, bn_scale)
    else:
        negative, scale_w = _signs_and_scale(conv)
        _set(dst.bits, pack_bits(negative))
        _set(dst.alpha, scale_w.to(torch.float64) * bn_scale)
    _set(dst.beta, bn_shift + m1 + (b if fold_move else 0.0))
    _set(dst.thresh, b)
    _set(dst.act, torch.stack([slope, m2]))


def _fill_unit(dst: BinaryLayout, conv, bn, act, move) -> None:
    _fill_binary(dst, conv, bn, act, move, fold_move=True)


def _fill_mlp(dst: MlpLayout, src: nn.Module) -> None:
    _fill_binary(dst.fc1, src.fc1, src.norm1, src.act2, src.move1, fold_move=False)
    _fill_binary(dst.fc2, src.fc2, src.norm2, src.act3, src.move2, fold_move=False)
    if dst.fc1.res_params is not None:
        s0, t0 = _bn(src.norm0)
        m1, slope, m2 = _rprelu(src.act1)
        _set(dst.fc1.res_params, torch.stack([s0, t0 + m1, slope, m2]))


def _fill_norm(dst: NormLayout, src: nn.Module) -> None:
    if isinstance(src, nn.BatchNorm2d):
        _set(dst.affine, torch.stack(_bn(src)))
    else:
        if src.eps != 1e-5:  # the runtime's GroupNorm uses the model's fixed eps
            raise ValueError(f"GroupNorm eps {src.eps} is not 1e-5; the runtime cannot run it")
        _set(dst.affine, torch.stack([_vec(src.weight), _vec(src.bias)]))


def _fill_float_conv(dst: FloatConvLayout, conv: nn.Conv2d, norm: nn.Module, act: RPReLU | None) -> None:
    w = conv.weight.detach().to(torch.float64)
    b = _vec(conv.bias) if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    if isinstance(norm, nn.BatchNorm2d):
        scale, shift = _bn(norm)
        w, b = w * scale.view(-1, 1, 1, 1), b * scale + shift
    else:
        _fill_norm(dst.norm, norm)
    _set(dst.weight, w)
    _set(dst.bias, b)
    if act is not None:
        _set(dst.act, torch.stack(_rprelu(act)))


def _fill_patm(dst: PATMLayout, src: nn.Module) -> None:
    units = {
        "theta_h_conv": ("theta_h_bn", "theta_h_act", "move_thetah"),
        "theta_w_conv": ("theta_w_bn", "theta_w_act", "move_thetaw"),
        "fc_h": ("fc_h_bn", "fc_h_act", "move_fch"),
        "fc_w": ("fc_w_bn", "fc_w_act", "move_fcw"),
        "fc_c": ("norm_c", "act_c", "move_fcc"),
        "proj": ("norm_proj", "act_proj", "move_proj"),
    }
    for name, (bn, act, move) in units.items():
        _fill_unit(getattr(dst, name), getattr(src, name), getattr(src, bn), getattr(src, act),
                   getattr(src, move))
    # token mixers: the shortcut is the pair mean of the shifted input, computed from it directly
    _fill_binary(dst.tfc_h, src.tfc_h, src.norm_h, src.act_h, src.move_tfch, fold_move=False)
    _fill_binary(dst.tfc_w, src.tfc_w, src.norm_w, src.act_w, src.move_tfcw, fold_move=False)
    _fill_mlp(dst.reweight, src.reweight)


def _fill_block(dst: BlockLayout, src: nn.Module) -> None:
    _fill_norm(dst.norm1, src.norm1)
    _fill_norm(dst.norm2, src.norm2)
    _fill_patm(dst.attn, src.attn)
    _fill_mlp(dst.mlp, src.mlp)
    if dst.multi_branch:
        _fill_binary(dst.sfc_h, src.sfc_h, src.norm_h, src.act1, src.move_h, fold_move=True)
        _fill_binary(dst.sfc_w, src.sfc_w, src.norm_w, src.act2, src.move_w, fold_move=True)
        _set(dst.weight, src.weight.detach())


def _fill_react_block(dst, src: nn.Module) -> None:
    """3x3 unit: shortcut x (or its 2x2 average pool), unshifted; 1x1 unit: shortcut y, and for
    2x the channels both convs in one layer whose shortcut tiles y twice (the concatenation)."""
    _fill_binary(dst.binary_3x3, src.binary_3x3, src.bn1, src.act1, src.move11, fold_move=False)
    if src.cout == src.cin:
        _fill_binary(dst.binary_pw, src.binary_pw, src.bn2, src.act2, src.move21, fold_move=False)
        return
    pw = dst.binary_pw
    signs, alphas, betas = [], [], []
    for conv, bn in ((src.binary_pw_down1, src.bn2_1), (src.binary_pw_down2, src.bn2_2)):
        negative, scale = _signs_and_scale(conv)
        bn_scale, bn_shift = _bn(bn)
        signs.append(negative)
        alphas.append(scale.to(torch.float64) * bn_scale)
        betas.append(bn_shift)
    m1, slope, m2 = _rprelu(src.act2)
    _set(pw.bits, pack_bits(torch.cat(signs)))
    _set(pw.alpha, torch.cat(alphas))
    _set(pw.beta, torch.cat(betas) + m1)
    _set(pw.thresh, _vec(src.move21.bias))
    _set(pw.act, torch.stack([slope, m2]))


def _pack_reactnet(model: nn.Module) -> ReActNetLayout:
    packed = ReActNetLayout(packed_config(model))
    for name, m in model.named_modules():
        if isinstance(m, BinaryConv2d):
            _signs_and_scale(m, name)
    _fill_float_conv(packed.stem, model.patch_embed.proj, model.patch_embed.norm, None)
    blocks = [b for b in model.modules() if isinstance(b, ReActBlock)]  # in forward order
    for dst, src in zip(packed.blocks, blocks, strict=True):
        _fill_react_block(dst, src)
    _set(packed.head_weight, model.head.weight.detach())
    _set(packed.head_bias, model.head.bias.detach())
    return packed


@torch.no_grad()
def pack_weights(model: nn.Module) -> BiMLPLayout | ReActNetLayout:
    """The packed tensors of ``model`` (a BiMLP in eval mode, ``paper`` or ``official`` mode;
    not modified).

    Raises:
        ValueError: real-valued-weight models, zero binary weights, unsupported layouts.
    """
    check_packable(model)
    if getattr(model, "family", "bimlp") == "reactnet":
        return _pack_reactnet(model)
    packed = BiMLPLayout(packed_config(model))
    real_taps = packed.config.get("mode") == "official"
    for name, m in model.named_modules():  # every layer stored as bits has a 1-bit code (named errors)
        if isinstance(m, BinaryConv2d) and not (real_taps and m.kernel_size != (1, 1)):
            _signs_and_scale(m, name)
    _fill_float_conv(packed.stem, model.patch_embed.proj, model.patch_embed.norm, model.patch_embed.act)
    for dst, src in zip(packed.network, model.network, strict=True):
        if isinstance(dst, DownsampleLayout):
            _fill_float_conv(dst.proj, src.proj, src.norm, getattr(src, "act", None))
        else:
            for dblock, sblock in zip(dst, src, strict=True):
                _fill_block(dblock, sblock)
    w, b = model.head.weight.detach().to(torch.float64), _vec(model.head.bias)
    if isinstance(model.norm, nn.BatchNorm2d):
        scale, shift = _bn(model.norm)
        w, b = w * scale.view(1, -1), b + w @ shift
    else:
        _fill_norm(packed.norm, model.norm)
    _set(packed.head_weight, w)
    _set(packed.head_bias, b)
    return packed
