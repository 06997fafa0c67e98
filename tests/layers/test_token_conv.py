"""The token-mixing convolutions' C++ kernels equal torch's grouped convolution in value and in
the gradients of input, weight and bias (float64), eagerly and as custom ops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bimlp.layers import TokenConv2d
from bimlp.layers.fused import cpu_kernels
from bimlp.layers.token_conv import token_conv, token_conv_axis

pytestmark = pytest.mark.skipif(cpu_kernels() is None, reason="the C++ kernels could not be built")

CL = torch.channels_last

# (batch, output channels, inputs per group, H, W, kernel): the study's shapes in miniature,
# maps smaller than the taps, one and three inputs per group
CASES = [
    (3, 5, 2, 6, 7, (1, 7)),
    (2, 4, 2, 5, 3, (7, 1)),
    (2, 3, 2, 2, 2, (1, 7)),
    (2, 3, 2, 1, 4, (7, 1)),
    (2, 3, 1, 9, 4, (3, 1)),
    (1, 2, 3, 4, 4, (1, 5)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:5])) + f"-{c[5]}")
@pytest.mark.parametrize("bias", [False, True])
def test_module_matches_the_convolution_in_value_and_gradients(case, bias) -> None:
    n, c, p, h, w, k = case
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(c * p, c, k, padding=(k[0] // 2, k[1] // 2), groups=c, bias=bias).double()
    fast = TokenConv2d(c * p, c, k, padding=(k[0] // 2, k[1] // 2), groups=c, bias=bias).double()
    fast.load_state_dict(ref.state_dict())
    fast.fused = True
    x = torch.randn(n, c * p, h, w, dtype=torch.float64)
    x_ref = x.clone().requires_grad_()
    x_fast = x.clone().contiguous(memory_format=CL).requires_grad_()
    y_ref, y = ref(x_ref), fast(x_fast)
    assert y.is_contiguous(memory_format=CL)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12)
    g = torch.randn_like(y_ref)
    y_ref.backward(g)
    y.backward(g)
    torch.testing.assert_close(x_fast.grad, x_ref.grad, rtol=0, atol=1e-12)
    for name, param in fast.named_parameters():
        torch.testing.assert_close(param.grad, dict(ref.named_parameters())[name].grad, rtol=0,
                                   atol=1e-11)


def test_weight_gradient_alone_and_input_gradient_alone() -> None:
    torch.manual_seed(1)
    w = torch.randn(4, 2, 7, 1, dtype=torch.float64)
    x = torch.randn(2, 8, 5, 3, dtype=torch.float64)
    for need_x, need_w in ((True, False), (False, True)):
        xs, ws = x.clone().requires_grad_(need_x), w.clone().requires_grad_(need_w)
        y = token_conv(xs, ws, 0)
        y.sum().backward()
        ref_x, ref_w = x.clone().requires_grad_(need_x), w.clone().requires_grad_(need_w)
        F.conv2d(ref_x, ref_w, padding=(3, 0), groups=4).sum().backward()
        if need_x:
            torch.testing.assert_close(xs.grad, ref_x.grad, rtol=0, atol=1e-12)
            assert ws.grad is None
        else:
            torch.testing.assert_close(ws.grad, ref_w.grad, rtol=0, atol=1e-12)
            assert xs.grad is None


def test_other_convolutions_run_as_plain_convolutions() -> None:
    """Strides, dilations, other paddings, full kernels and dense convs are not token mixing:
    the module computes them as nn.Conv2d does, and the axis test says so."""
    assert token_conv_axis((4, 2, 1, 7), (1, 1), (0, 3), (1, 1), 4, 8) == 1
    assert token_conv_axis((4, 2, 7, 1), (1, 1), (3, 0), (1, 1), 4, 8) == 0
    for shape, stride, padding, groups, cin in [
        ((4, 2, 1, 7), (2, 1), (0, 3), 4, 8),
        ((4, 2, 1, 7), (1, 1), (0, 2), 4, 8),
        ((4, 2, 3, 3), (1, 1), (1, 1), 4, 8),
        ((4, 8, 1, 7), (1, 1), (0, 3), 1, 8),
        ((4, 2, 1, 6), (1, 1), (0, 3), 4, 8),
    ]:
        assert token_conv_axis(shape, stride, padding, (1, 1), groups, cin) is None
    torch.manual_seed(2)
    conv = TokenConv2d(8, 4, (1, 7), stride=2, padding=(0, 3), groups=4)
    conv.fused = True
    x = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, conv.bias, 2, (0, 3), 1, 4))


def test_kernels_reject_mismatched_arguments_with_a_message() -> None:
    ext = cpu_kernels()
    x = torch.randn(2, 8, 4, 4).contiguous(memory_format=CL)
    w = torch.randn(4, 2, 1, 7)
    with pytest.raises(RuntimeError, match="channels"):
        ext.token_conv_forward(x[:, :6].contiguous(memory_format=CL), w, 1)
    with pytest.raises(RuntimeError, match="channels-last"):
        ext.token_conv_forward(x.contiguous(), w, 1)
    with pytest.raises(RuntimeError, match="odd axis of taps"):
        ext.token_conv_forward(x, w, 0)
    with pytest.raises(RuntimeError, match="axis must be"):
        ext.token_conv_forward(x, w, 2)
    with pytest.raises(RuntimeError, match="gy must be"):
        ext.token_conv_backward(torch.randn(2, 4, 3, 4).contiguous(memory_format=CL), x, w, 1,
                                True, True)


@pytest.mark.parametrize("weight_format", [torch.contiguous_format, CL])
@pytest.mark.parametrize("axis", [0, 1])
def test_custom_ops_pass_opcheck(axis, weight_format) -> None:
    """Also with channels-last weights (a fast-path model's): the fake kernels' strides must be
    the real ones, or a compiled graph fails its stride assertions."""
    k = (1, 5) if axis == 1 else (5, 1)
    x = torch.randn(2, 6, 4, 3).contiguous(memory_format=CL)
    w = torch.randn(3, 2, *k).contiguous(memory_format=weight_format)
    gy = torch.randn(2, 3, 4, 3).contiguous(memory_format=CL)
    torch.library.opcheck(torch.ops.bimlp.token_conv_forward.default, (x, w, axis))
    torch.library.opcheck(torch.ops.bimlp.token_conv_backward.default,
                          (gy, x, w, axis, True, True))
