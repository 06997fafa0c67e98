"""The ternary-activation GEMM (official mode's 1x1 layers) of every instruction set: activations
round(clip(x, -1, 1)) in {-1, 0, +1} as sign and nonzero bit planes against +-1 weights, exact
against the integer product on random shapes (K and N not multiples of 64 / 16 included)."""

from __future__ import annotations

import numpy as np
import pytest
from runtime_helpers import signs

from bimlp_runtime import testing as T

ISAS = T.supported_isas()


def ternary(x: np.ndarray) -> np.ndarray:
    """round(clip(x, -1, 1)) as PyTorch computes it (half to even: +-0.5 -> 0)."""
    return np.round(np.clip(x.astype(np.float32), -1, 1)).astype(np.int64)


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (7, 64, 16), (13, 130, 21), (50, 320, 80), (6, 1000, 33),
                                   (25, 2048, 17), (3, 63, 5), (31, 65, 47), (2, 4099, 3)])
def test_ternary_gemm_is_exact(m, k, n):
    rng = np.random.default_rng(m * 7919 + k * 31 + n)
    x = rng.uniform(-1.6, 1.6, (m, k)).astype(np.float32)
    x[0, : k // 4] = rng.choice(np.float32([0.5, -0.5, 0.0, -0.0, 0.50000006, -0.50000006]), k // 4)
    w = rng.standard_normal((n, k))
    ref = ternary(x) @ signs(w).T.astype(np.int64)
    t = ternary(x)
    if m * k >= 100:  # the three values all occur
        assert (t == 0).any() and (t == 1).any() and (t == -1).any()
    for isa in ISAS:
        out = T.tgemm(isa, x, w)
        assert np.array_equal(out, ref.astype(np.float32)), isa


def test_ternary_gemm_all_zero_and_all_nonzero_rows():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((19, 200))
    x = np.stack([np.full(200, 0.3), np.full(200, -0.3), np.full(200, 0.9), np.full(200, -2.0)]).astype(np.float32)
    ref = ternary(x) @ signs(w).T.astype(np.int64)
    assert np.array_equal(ref[0], np.zeros(19)) and np.array_equal(ref[1], np.zeros(19))
    for isa in ISAS:
        assert np.array_equal(T.tgemm(isa, x, w), ref.astype(np.float32)), isa


def test_ternary_gemm_arguments_are_checked():
    with pytest.raises(ValueError, match="unknown instruction set"):
        T.tgemm("sse9", np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="shapes"):
        T.tgemm("portable", np.ones((2, 3)), np.ones((2, 4)))


@pytest.mark.parametrize("axis,pairs,shape", [(0, 2, (2, 3, 9, 26)), (1, 1, (1, 8, 5, 13)), (0, 1, (1, 2, 3, 70)),
                                              (1, 2, (2, 4, 2, 34))])
def test_real_tap_token_conv_matches_float64_and_is_bit_identical(axis, pairs, shape):
    """Official mode's 1x7 / 7x1 conv: ternary planes against real-valued taps (maps smaller than
    the kernel included, so padded taps are skipped)."""
    rng = np.random.default_rng(sum(shape) + axis)
    x = rng.uniform(-1.5, 1.5, shape).astype(np.float32)
    w = rng.standard_normal((7, shape[3])).astype(np.float32)
    t = ternary(x).astype(np.float64)
    b, h, wd, cs = shape
    pad = np.zeros((b, h + 6, wd + 6, cs))
    pad[:, 3:3 + h, 3:3 + wd] = t
    ref = np.zeros((b, h, wd, cs))
    for k in range(7):
        ref += w[k] * (pad[:, 3:3 + h, k:k + wd] if axis == 0 else pad[:, k:k + h, 3:3 + wd])
    ref = ref.reshape(b * h * wd, cs // pairs, pairs).sum(2)
    outs = {isa: T.token_conv(isa, x, w, axis, pairs, real_taps=True) for isa in ISAS}
    np.testing.assert_allclose(outs["portable"], ref, rtol=1e-5, atol=1e-5)
    for isa, out in outs.items():
        assert np.array_equal(out, outs["portable"]), isa
