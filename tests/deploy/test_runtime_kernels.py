"""Each runtime kernel, per instruction set: exact against sign(x) @ sign(w) (and its reference),
bit-identical across instruction sets, and the ISA selection."""

from __future__ import annotations

import numpy as np
import pytest
from runtime_helpers import signs

import bimlp_runtime
from bimlp_runtime import testing as T

ISAS = T.supported_isas()
# Tests that compare instruction sets with one another have nothing to compare on a machine
# with the portable kernels only: they skip, saying so, rather than pass on one set.
needs_two_isas = pytest.mark.skipif(
    len(ISAS) < 2, reason=f"one instruction set here ({', '.join(ISAS)}): nothing to compare"
)


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


def _prelu(v: np.ndarray, a: np.ndarray) -> np.ndarray:
    return np.where(v >= 0, v, a * v)


def _unit_ref(x, w, params, res, res_kind, scale):
    """The unit's epilogue in float32, operation by operation as the kernels run it."""
    p = params.astype(np.float32)
    d = (signs(x) @ signs(w).T).astype(np.float32)
    v = p[0] * d + p[1]
    if res_kind:
        s = res.astype(np.float32)
        if res_kind == 2:
            s = np.tile(s, (1, w.shape[0] // s.shape[1]))
        if scale:
            s = _prelu(p[4] * s + p[5], p[6]) + p[7]
        v = v + s
    v = _prelu(v, p[2]) + p[3]
    n = w.shape[0]
    bits = np.pad((v + p[8] < 0).astype(np.uint64), ((0, 0), (0, -n % 64)))
    words = (bits.reshape(len(x), -1, 64) << np.arange(64, dtype=np.uint64)).sum(-1, dtype=np.uint64)
    return v, words


# (rows, K, N, shortcut, tile width, scale): rows not a multiple of the 6-row tile or the 24-row
# block, K of one and of several words, N with a partial panel (the fused kernel's masked lanes)
# and with unused 16-bit slots in the last packed word, the fallback for tiles of 8 channels.
@pytest.mark.parametrize("m,k,n,res_kind,cr,scale", [
    (31, 64, 64, 1, 64, False), (7, 320, 320, 1, 320, False), (25, 64, 256, 2, 64, True),
    (13, 130, 80, 2, 16, True), (30, 100, 40, 0, 0, False), (5, 64, 21, 1, 21, True),
    (26, 512, 96, 2, 32, False), (9, 64, 64, 2, 8, True)])
def test_fused_unit_equals_dots_then_epilogue_and_float32_reference(m, k, n, res_kind, cr, scale):
    rng = np.random.default_rng(m + k + n + cr)
    x, w = rng.standard_normal((m, k)), rng.standard_normal((n, k))
    params = rng.standard_normal((9, n)).astype(np.float32)
    params[0] = np.abs(params[0]) / k
    res = rng.standard_normal((m, cr)).astype(np.float32) if res_kind else None
    ref_out, ref_bits = _unit_ref(x, w, params, res, res_kind, scale)
    used = {}
    for isa in ISAS:
        for fused in (False, True):
            out, bits, used[isa, fused] = T.unit(isa, x, w, params, res, res_kind, scale, fused=fused)
            assert np.array_equal(out, ref_out), (isa, fused)
            assert np.array_equal(bits, ref_bits), (isa, fused)
    # the one-pass kernel ran where one exists (AVX-512, AVX2) and the panels do not straddle a
    # shortcut tile
    for isa in ("avx512", "avx2"):
        assert used.get((isa, True), False) == (isa in ISAS and (res_kind != 2 or cr % 16 == 0)), isa
    assert not any(used[isa, False] for isa in ISAS)


def test_pack_bit_layout():
    x = np.zeros((2, 70), dtype=np.float32)
    x[0, [0, 3, 64, 69]] = -1.0
    x[1, 1] = -0.0  # -0 + 0 is not < 0
    for isa in ISAS:
        words = T.pack(isa, x, np.zeros(70))
        assert words.shape == (2, 2)
        assert int(words[0, 0]) == 0b1001 and int(words[0, 1]) == (1 | 1 << 5), isa
        assert int(words[1, 0]) == 0 and int(words[1, 1]) == 0, isa
    # with a threshold: bit = (x + t < 0), LSB first in 64-bit words (written out in numpy)
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((5, 130)), rng.standard_normal(130)
    bits = np.pad((x + t < 0).astype(np.uint64), ((0, 0), (0, 62)))  # 130 -> 192 = 3 words
    expected = (bits.reshape(5, 3, 64) << np.arange(64, dtype=np.uint64)).sum(-1, dtype=np.uint64)
    for isa in ISAS:
        assert np.array_equal(T.pack(isa, x, t), expected), isa


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


# N = 96: three weight panels, so a two-panel tile (AVX-512) and a lone panel after it
_SGEMM_SHAPES = [(1, 147, 64), (29, 64, 128), (7, 320, 45), (100, 33, 1), (13, 70, 96)]


def _sgemm_operands(m: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(m + k + n)
    return rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((n, k)).astype(np.float32)


@pytest.mark.parametrize("m,k,n", _SGEMM_SHAPES)
def test_float_gemm_close_to_numpy(m, k, n):
    a, w = _sgemm_operands(m, k, n)
    for isa in ISAS:
        np.testing.assert_allclose(T.sgemm(isa, a, w), a.astype(np.float64) @ w.T.astype(np.float64),
                                   rtol=1e-4, atol=1e-4, err_msg=isa)


@needs_two_isas
@pytest.mark.parametrize("m,k,n", _SGEMM_SHAPES)
def test_float_gemm_identical_across_isas(m, k, n):
    a, w = _sgemm_operands(m, k, n)
    outs = {isa: T.sgemm(isa, a, w) for isa in ISAS}
    for isa, out in outs.items():
        assert np.array_equal(out, outs["portable"]), isa


def test_kernel_arguments_are_checked():
    with pytest.raises(ValueError, match="unknown instruction set"):
        T.bgemm("sse9", np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="shapes"):
        T.bgemm("portable", np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="token conv"):
        T.token_conv("portable", np.ones((1, 2, 2, 3)), np.ones((7, 3)), axis=0, pairs=2)


@pytest.fixture(scope="module")
def deep_artifacts(tmp_path_factory):
    """Two blocks per stage (every epilogue kind, fc2 writing the next block's norm1), with dims
    that fill 16-channel panels and with dims that do not (the fused kernels' fallbacks)."""
    from deploy_helpers import conditioned_model

    from bimlp.deploy import export

    out = []
    for i, dims in enumerate([(16, 32, 48, 64), (20, 36, 44, 68)]):
        model = conditioned_model(calib_size=33, depths=(2, 1, 2, 1), dims=dims, num_classes=10)
        out.append(export(model, tmp_path_factory.mktemp("rt") / f"deep{i}.bimlp"))
    return out


@needs_two_isas
@pytest.mark.parametrize("which", [0, 1])
def test_deeper_networks_are_bit_identical_across_isas(deep_artifacts, which, monkeypatch):
    x = np.random.default_rng(which).standard_normal((3, 3, 33, 29)).astype(np.float32)
    outs = {}
    for isa in ISAS:
        monkeypatch.setenv("BIMLP_ISA", isa)
        outs[isa] = bimlp_runtime.load(deep_artifacts[which], threads=2).run(x)
    for isa, out in outs.items():
        assert np.array_equal(out, outs["portable"]), isa


@needs_two_isas
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


def test_comparisons_skip_with_a_reason_on_one_instruction_set(tmp_path):
    # a machine with the portable kernels only (BIMLP_ISA cannot add sets): the tests comparing
    # sets report as skipped, saying why, and none passes by comparing a set with itself
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "only_portable.py").write_text(
        "from bimlp_runtime import testing\ntesting.supported_isas = lambda: ['portable']\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "only_portable", "-p", "no:cacheprovider", "-q",
         "-rs", "-k", "across_isas", __file__],
        capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    tail = done.stdout.strip().splitlines()[-1]
    assert "skipped" in tail and "passed" not in tail, done.stdout[-3000:]
    assert "one instruction set here (portable): nothing to compare" in done.stdout
