"""Quantizers: tables of input -> expected output -> expected gradient factor."""

from __future__ import annotations

import pytest
import torch

from bimlp.layers import QUANTIZERS, get_quantizer

# (input, output, d output / d input)
APPROX_SIGN = [
    (-2.0, -1.0, 0.0),
    (-1.0, -1.0, 0.0),
    (-0.5, -1.0, 1.0),  # 2 - 2 * 0.5
    (-0.25, -1.0, 1.5),
    (0.0, 1.0, 2.0),  # sign(0) = +1
    (0.25, 1.0, 1.5),
    (0.75, 1.0, 0.5),
    (1.0, 1.0, 0.0),
    (3.0, 1.0, 0.0),
]
TERNARY = [
    (-2.0, -1.0, 0.0),
    (-1.0, -1.0, 1.0),
    (-0.6, -1.0, 1.0),
    (-0.5, -0.0, 1.0),  # round half to even
    (-0.4, -0.0, 1.0),
    (0.0, 0.0, 1.0),
    (0.5, 0.0, 1.0),
    (0.51, 1.0, 1.0),
    (1.5, 1.0, 0.0),
]


@pytest.mark.parametrize("name,table", [("approx_sign", APPROX_SIGN), ("ternary_round", TERNARY)])
def test_activation_tables(name, table):
    q = get_quantizer(name)
    x = torch.tensor([row[0] for row in table], requires_grad=True)
    y = q(x)
    y.sum().backward()
    assert y.tolist() == [row[1] for row in table]
    assert x.grad.tolist() == pytest.approx([row[2] for row in table])


def test_scaled_sign_per_output_channel():
    w = torch.tensor(
        [[[[0.5, -1.5]], [[0.0, 2.0]]],  # out channel 0: mean|w| = (0.5+1.5+0+2)/4 = 1.0
         [[[-0.1, 0.3]], [[0.2, -0.2]]]],  # out channel 1: mean|w| = 0.8/4 = 0.2
        requires_grad=True,
    )
    q = get_quantizer("scaled_sign")
    y = q(w)
    expected = torch.tensor(
        [[[[1.0, -1.0]], [[1.0, 1.0]]],  # sign(0) = +1
         [[[-0.2, 0.2]], [[0.2, -0.2]]]]
    )
    assert torch.equal(y, expected)
    y.sum().backward()
    # straight-through, zeroed where |w| > 1; the scale is a constant
    grad = torch.tensor([[[[1.0, 0.0]], [[1.0, 0.0]]], [[[1.0, 1.0]], [[1.0, 1.0]]]])
    assert torch.equal(w.grad, grad)


def test_channel_mean_sign_is_per_tap_and_identity_grad():
    # shape (out=1, in=2, 1, 2): the mean runs over the two input channels of each tap
    w = torch.tensor([[[[1.0, -4.0]], [[-3.0, 0.0]]]], requires_grad=True)
    y = get_quantizer("channel_mean_sign")(w)
    # tap 0: mean(|1|, |-3|) = 2; tap 1: mean(|-4|, |0|) = 2; sign(0) = 0
    assert torch.equal(y, torch.tensor([[[[2.0, -2.0]], [[-2.0, 0.0]]]]))
    y.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


def test_channel_mean_sign_leaves_depthwise_weights_real():
    w = torch.randn(8, 1, 1, 7)
    q = get_quantizer("channel_mean_sign")
    assert torch.allclose(q(w), w)
    assert q.precision_for(w.shape) == 32 and q.precision_for((8, 2, 1, 7)) == 1


def test_registry_names_and_precision():
    assert {"approx_sign", "scaled_sign", "ternary_round", "channel_mean_sign", "identity"} <= set(QUANTIZERS)
    assert get_quantizer("approx_sign").precision == 1
    assert get_quantizer("ternary_round").precision == 2
    assert get_quantizer(None).precision == 32
    with pytest.raises(ValueError, match="unknown quantizer 'nope'"):
        get_quantizer("nope")
