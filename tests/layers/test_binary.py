"""BinaryConv2d, Uni-shortcut, RPReLU and TF-SAME pooling."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bimlp.layers import (
    BinaryConv2d,
    LearnableBias,
    RPReLU,
    UniShortcut,
    group_mean,
    same_max_pool,
    tile_channels,
)


def test_binary_conv_is_a_conv2d_with_the_same_arguments():
    conv = BinaryConv2d(8, 4, (1, 7), stride=2, padding=(0, 3), groups=4)
    assert isinstance(conv, nn.Conv2d)
    assert conv.bias is None and conv.weight.shape == (4, 2, 1, 7)
    assert (conv.stride, conv.padding, conv.groups) == ((2, 2), (0, 3), 4)


def test_binary_conv_signature_matches_conv2d():
    # every nn.Conv2d argument, in nn.Conv2d's order, then the quantizers (keyword-only); the
    # defaults are nn.Conv2d's except kernel_size (1) and bias (False, and True is refused)
    theirs = list(inspect.signature(nn.Conv2d).parameters.values())
    ours = list(inspect.signature(BinaryConv2d).parameters.values())
    assert [p.name for p in ours[: len(theirs)]] == [p.name for p in theirs]
    assert [p.kind for p in ours[: len(theirs)]] == [p.kind for p in theirs]
    differ = {"kernel_size": 1, "bias": False}
    for a, b in zip(ours, theirs, strict=False):  # ours may add parameters
        assert a.default == differ.get(a.name, b.default), a.name
    extra = ours[len(theirs):]
    assert [(p.name, p.kind) for p in extra] == [
        ("input_quantizer", inspect.Parameter.KEYWORD_ONLY),
        ("weight_quantizer", inspect.Parameter.KEYWORD_ONLY),
    ]


def test_binary_conv_takes_dilation_device_and_dtype_like_conv2d():
    kw = dict(stride=1, padding=2, dilation=2, groups=2)
    conv = BinaryConv2d(4, 6, 3, **kw, device="cpu", dtype=torch.float64)
    assert conv.weight.dtype == torch.float64 and conv.weight.device.type == "cpu"
    assert conv.dilation == (2, 2)
    x = torch.randn(2, 4, 9, 8, dtype=torch.float64)
    w = conv.weight
    wq = torch.where(w >= 0, 1.0, -1.0) * w.abs().mean(dim=(1, 2, 3), keepdim=True)
    ref = F.conv2d(torch.where(x >= 0, 1.0, -1.0).double(), wq, None, **kw)
    assert ref.shape == (2, 6, 9, 8)
    assert torch.allclose(conv(x), ref)
    # padding="same" as nn.Conv2d accepts it
    assert BinaryConv2d(4, 4, (1, 7), padding="same")(torch.randn(1, 4, 5, 9)).shape == (1, 4, 5, 9)


@pytest.mark.parametrize("kwargs,message", [
    ({"bias": True}, "no bias"),
    ({"padding_mode": "reflect"}, "padding_mode='reflect'"),
    ({"padding_mode": "circular"}, "pads with zeros only"),
])
def test_binary_conv_refuses_what_it_cannot_honour(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BinaryConv2d(4, 4, 3, padding=1, **kwargs)


@pytest.mark.parametrize("kernel,stride,padding,groups", [
    (1, 1, 0, 1), (3, 2, 1, 1), ((1, 7), 1, (0, 3), 4), ((7, 1), 1, (3, 0), 8), (3, 1, 1, 8),
])
def test_binary_conv_equals_conv_of_signs(kernel, stride, padding, groups):
    conv = BinaryConv2d(8, 8, kernel, stride=stride, padding=padding, groups=groups)
    x = torch.randn(2, 8, 9, 11)
    w = conv.weight
    scale = w.abs().mean(dim=(1, 2, 3), keepdim=True)
    wq = torch.where(w >= 0, 1.0, -1.0) * scale
    xq = torch.where(x >= 0, 1.0, -1.0)
    ref = F.conv2d(xq, wq, None, stride, padding, 1, groups)
    assert torch.allclose(conv(x), ref, atol=1e-5)
    assert conv.input_precision == 1 and conv.weight_precision == 1


def test_binary_conv_full_precision_weights_for_step_one():
    conv = BinaryConv2d(4, 4, 1, weight_quantizer="identity")
    x = torch.randn(1, 4, 3, 3)
    ref = F.conv2d(torch.where(x >= 0, 1.0, -1.0), conv.weight)
    assert torch.allclose(conv(x), ref, atol=1e-6)
    assert conv.weight_precision == 32


def test_uni_shortcut_kinds():
    x = torch.arange(8.0).reshape(1, 8, 1, 1)
    tile = UniShortcut(8, 24)
    assert tile.kind == "tile" and tile(x).flatten().tolist() == list(range(8)) * 3
    pair = UniShortcut(8, 4)  # pair-mean: out[k] = (x[2k] + x[2k+1]) / 2
    assert pair(x).flatten().tolist() == [0.5, 2.5, 4.5, 6.5]
    quad = UniShortcut(8, 2)  # out[j] = (x[4j] + ... + x[4j+3]) / 4
    assert quad(x).flatten().tolist() == [1.5, 5.5]
    assert UniShortcut(8, 8)(x) is x
    # the release's strided form
    y = torch.randn(2, 12, 3, 5)
    strided = (y[:, 0::4] + y[:, 1::4] + y[:, 2::4] + y[:, 3::4]) / 4
    assert torch.allclose(group_mean(y, 4), strided)
    assert torch.equal(tile_channels(y, 2), y.repeat(1, 2, 1, 1))
    with pytest.raises(ValueError, match="6 -> 4"):
        UniShortcut(6, 4)


def test_uni_shortcut_keeps_channels_last_with_the_same_values_and_gradients():
    """The fast path's NHWC layout: tile and group mean stay channels-last (no layout copy
    after them) and give what the NCHW forms give, forward and backward."""
    y = torch.randn(2, 12, 3, 5, dtype=torch.float64)
    grads = {4: torch.randn(2, 3, 3, 5, dtype=torch.float64),
             2: torch.randn(2, 24, 3, 5, dtype=torch.float64)}
    for fn, k in ((group_mean, 4), (tile_channels, 2)):
        plain = y.clone().requires_grad_()
        nhwc = y.contiguous(memory_format=torch.channels_last).requires_grad_()
        out_plain, out_nhwc = fn(plain, k), fn(nhwc, k)
        assert out_nhwc.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(out_nhwc, out_plain, rtol=1e-15, atol=0)
        out_plain.backward(grads[k])
        out_nhwc.backward(grads[k])
        torch.testing.assert_close(nhwc.grad, plain.grad, rtol=1e-15, atol=0)


def test_rprelu_and_learnable_bias():
    act = RPReLU(2)
    with torch.no_grad():
        act.move1.bias.copy_(torch.tensor([1.0, -1.0]).view(1, 2, 1, 1))
        act.move2.bias.copy_(torch.tensor([0.5, 0.0]).view(1, 2, 1, 1))
    x = torch.tensor([-3.0, 0.5]).view(1, 2, 1, 1)
    # channel 0: -3 + 1 = -2 -> 0.25 * -2 = -0.5 -> + 0.5 = 0; channel 1: 0.5 - 1 = -0.5 -> -0.125
    assert act(x).flatten().tolist() == [0.0, -0.125]
    assert LearnableBias(3).bias.shape == (1, 3, 1, 1)


def test_same_max_pool_odd_size_hand_computed():
    # 5x5 input, values 0..24 row-major; kernel 3, stride 2 -> output ceil(5/2) = 3.
    # total pad = (3 - 1) * 2 + 3 - 5 = 2: one row/col before, one after.
    x = torch.arange(25.0).reshape(1, 1, 5, 5)
    expected = torch.tensor([[6.0, 8.0, 9.0], [16.0, 18.0, 19.0], [21.0, 23.0, 24.0]])
    assert torch.equal(same_max_pool(x, 3, 2)[0, 0], expected)
    # kernel 2 on 5x5: total pad = 2*2 + 2 - 5 = 1, all of it after (bottom/right)
    expected2 = torch.tensor([[6.0, 8.0, 9.0], [16.0, 18.0, 19.0], [21.0, 23.0, 24.0]])
    assert torch.equal(same_max_pool(x, 2, 2)[0, 0], expected2)
    # kernel 5 on 5x5: total pad = 4 + 5 - 5 = 4 -> (2, 2); window centred on 0, 2, 4
    expected5 = torch.tensor([[12.0, 14.0, 14.0], [22.0, 24.0, 24.0], [22.0, 24.0, 24.0]])
    assert torch.equal(same_max_pool(x, 5, 2)[0, 0], expected5)


def test_same_max_pool_even_size_pads_like_tensorflow():
    # even H: kernel 3 pads (0, 1), not the symmetric (1, 1) of MaxPool2d(padding=1)
    x = torch.randn(1, 2, 8, 8)
    ours = same_max_pool(x, 3, 2)
    ref = F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=float("-inf")), 3, 2)
    assert torch.equal(ours, ref)
    assert not torch.equal(ours, F.max_pool2d(x, 3, 2, padding=1))
    for k, (before, after) in {5: (1, 2), 7: (2, 3)}.items():
        ref = F.max_pool2d(F.pad(x, (before, after, before, after), value=float("-inf")), k, 2)
        assert torch.equal(same_max_pool(x, k, 2), ref)
