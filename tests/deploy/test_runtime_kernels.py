"""Each runtime kernel, per instruction set: exact against sign(x) @ sign(w) (and its reference),
bit-identical across instruction sets, and the ISA selection."""

from __future__ import annotations

import numpy as np
import pytest
from runtime_helpers import signs

import bimlp_runtime
from bimlp_runtime import testing as T

ISAS = T.supported_isas()


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (7, 64, 16), (13, 130, 21), (50, 320, 80), (6, 1000, 33),
                                   (25, 2048, 17), (3, 63, 5)])
def test_xnor_gemm_is_exact(m, k, n):
    rng = np.random.default_rng(m * 1000 + k + n)
    x, w = rng.standard_normal((m, k)), rng.standard_normal((n, k))
    x[0, : k // 3] = 0.0  # sign(0) = +1
    ref = signs(x) @ signs(w).T
    for isa in ISAS:
        out = T.bgemm(isa, x, w)
        assert np.array_equal(out, ref), isa


def test_pack_bit_layout():
    x = np.zeros((2, 70), dtype=np.float32)
    x[0, [0, 3, 64, 69]] = -1.0
    x[1, 1] = -0.0  # -0 + 0 is not < 0
    for isa in ISAS:
        words = T.pack(isa, x, np.zeros(70))
        assert words.shape == (2, 2)
        assert int(words[0, 0]) == 0b1001 and int(words[0, 1]) == (1 | 1 << 5), isa
        assert int(words[1, 0]) == 0 and int(words[1, 1]) == 0, isa
        assert np.array_equal(T.pack(isa, x, np.full(70, -0.5)), T.pack("portable", x, np.full(70, -0.5)))


def _token_ref(x: np.ndarray, w: np.ndarray, axis: int, pairs: int) -> np.ndarray:
    """Padded 1xT / Tx1 conv of sign planes, padded taps contribute 0."""
    b, h, wd, cs = x.shape
    t = w.shape[0]
    s, k = signs(x), signs(w)
    pad = t // 2
    out = np.zeros((b, h, wd, cs))
    for tap in range(t):
        d = tap - pad
        shifted = np.zeros_like(s)
        if axis == 0:
            lo, hi = max(0, -d), min(wd, wd - d)
            if lo < hi:
                shifted[:, :, lo:hi] = s[:, :, lo + d:hi + d]
        else:
            lo, hi = max(0, -d), min(h, h - d)
            if lo < hi:
                shifted[:, lo:hi] = s[:, lo + d:hi + d]
        out += shifted * k[tap]
    out = out.reshape(b * h * wd, cs // pairs, pairs).sum(-1)
    return out


@pytest.mark.parametrize("pairs,axis,b,h,w,c", [(1, 0, 2, 5, 9, 16), (2, 1, 1, 8, 3, 24), (2, 0, 1, 4, 11, 100),
                                                (1, 1, 2, 2, 2, 70), (2, 1, 3, 14, 14, 64)])
def test_token_conv_is_exact(pairs, axis, b, h, w, c):
    rng = np.random.default_rng(c + h)
    x, taps = rng.standard_normal((b, h, w, c * pairs)), rng.standard_normal((7, c * pairs))
    ref = _token_ref(x, taps, axis, pairs)
    for isa in ISAS:
        assert np.array_equal(T.token_conv(isa, x, taps, axis, pairs), ref), isa


@pytest.mark.parametrize("m,k,n", [(1, 147, 64), (29, 64, 128), (7, 320, 45), (100, 33, 1)])
def test_float_gemm_close_to_numpy_and_identical_across_isas(m, k, n):
    rng = np.random.default_rng(m + k + n)
    a, w = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((n, k)).astype(np.float32)
    outs = {isa: T.sgemm(isa, a, w) for isa in ISAS}
    np.testing.assert_allclose(outs["portable"], a.astype(np.float64) @ w.T.astype(np.float64), rtol=1e-4, atol=1e-4)
    for isa, out in outs.items():
        assert np.array_equal(out, outs["portable"]), isa


def test_kernel_arguments_are_checked():
    with pytest.raises(ValueError, match="unknown instruction set"):
        T.bgemm("sse9", np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="shapes"):
        T.bgemm("portable", np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="token conv"):
        T.token_conv("portable", np.ones((1, 2, 2, 3)), np.ones((7, 3)), axis=0, pairs=2)


def test_whole_network_is_bit_identical_across_isas(small_artifact, monkeypatch):
    path, _ = small_artifact
    x = np.random.default_rng(0).standard_normal((2, 3, 33, 29)).astype(np.float32)
    outs = {}
    for isa in ISAS:
        monkeypatch.setenv("BIMLP_ISA", isa)
        model = bimlp_runtime.load(path, threads=2)
        assert model.isa == isa
        outs[isa] = model.run(x)
    for isa, out in outs.items():
        assert np.array_equal(out, outs["portable"]), isa


def test_unknown_isa_is_an_error(small_artifact, monkeypatch):
    path, _ = small_artifact
    monkeypatch.setenv("BIMLP_ISA", "avx1024")
    with pytest.raises(ValueError, match="BIMLP_ISA=avx1024 is not an instruction set"):
        bimlp_runtime.load(path)
