"""Each kernel equals the plain definition exactly: sign(x + b) @ sign(W) as integers, the 1x7 /
7x1 token convs with zero padding (padded taps contribute 0, not ±1), the SAME max-pool mix."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from deploy_helpers import use

from bimlp.deploy.engine import _words_from_negative
from bimlp.deploy.kernels import native
from bimlp.layers import same_max_pool


def sign(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= 0, 1.0, -1.0).to(torch.float64)  # sign(0) = +1


def random_input(m: int, k: int, g: torch.Generator) -> torch.Tensor:
    x = torch.randn(m, k, generator=g)
    x[torch.rand(m, k, generator=g) < 0.1] = 0.0  # exact zeros: sign(0) = +1
    x[torch.rand(m, k, generator=g) < 0.05] = -0.0  # negative zero is >= 0 too
    return x


# (M, K, N): K below, at and above word sizes, not multiples of 64, > 31 words (AVX2 chunking),
# N not multiples of the 16-column panels, M not multiples of the row tiles.
SHAPES = [(1, 1, 1), (7, 5, 3), (13, 63, 17), (50, 64, 16), (37, 65, 33), (9, 100, 31),
          (101, 130, 47), (23, 320, 64), (5, 1000, 20), (19, 2112, 18), (200, 48, 144)]


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_xnor_gemm_equals_sign_matmul(kernel_sets, m, k, n):
    g = torch.Generator().manual_seed(m * 1000 + k + n)
    x = random_input(m, k, g)
    thresh = (torch.randn(k, generator=g) * 0.3).where(torch.rand(k, generator=g) < 0.7, torch.tensor(0.0))
    w = torch.randn(n, k, generator=g)
    expected = sign(x + thresh) @ sign(w).T  # (M, N) integers
    for name, kernels in kernel_sets:
        kern = use(kernels)
        bits = torch.empty(1, m, (k + 63) // 64, dtype=torch.int64)
        kern.pack_signs(x, thresh.view(1, -1).contiguous(), bits, None, None, None)
        panels = kern.make_panels(_words_from_negative(w < 0))
        out = torch.full((m, n), float("nan"))
        kern.bgemm(bits[0], panels, k, torch.ones(n), torch.zeros(n), 0, None, 1, None, None,
                   None, 1.0, None, 0.0, None, 0.0, out)
        assert torch.equal(out.to(torch.float64), expected), f"{name}: GEMM differs for {(m, k, n)}"


def test_multithreaded_gemm_and_token_conv_are_exact(kernel_sets):
    g = torch.Generator().manual_seed(5)
    m, k, n = 3000, 330, 72
    x, w = random_input(m, k, g), torch.randn(n, k, generator=g)
    expected = sign(x) @ sign(w).T
    planes = torch.where(torch.rand(2, 30, 50, 40, generator=g) < 0.5, -1, 1).to(torch.int8)
    taps = torch.where(torch.rand(7, 40, generator=g) < 0.5, -1, 1).to(torch.int8)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for name, kernels in kernel_sets[1:]:
            kern = use(kernels)
            bits = torch.empty(1, m, (k + 63) // 64, dtype=torch.int64)
            kern.pack_signs(x, torch.zeros(1, k), bits, None, None, None)
            out = torch.empty(m, n)
            kern.bgemm(bits[0], kern.make_panels(_words_from_negative(w < 0)), k, torch.ones(n),
                       torch.zeros(n), 0, None, 1, None, None, None, 1.0, None, 0.0, None, 0.0, out)
            assert torch.equal(out.to(torch.float64), expected), name
            conv = [torch.empty(3000, 40) for _ in range(2)]
            for i, t in enumerate((2, 1)):
                torch.set_num_threads(t)
                kern.sconv(planes, taps, 1, 1, torch.ones(40), torch.zeros(40), 0, None, 1, None, conv[i])
            assert torch.equal(conv[0], conv[1]), name
            torch.set_num_threads(2)
    finally:
        torch.set_num_threads(threads)


def test_pack_bit_layout(kernel_sets):
    # channel c -> bit c % 64 of word c // 64, 1 = negative, padding bits 0
    x = torch.tensor([[-1.0, 2.0, 0.0, -3.0] + [1.0] * 60 + [-1.0, -0.0, 5.0]])
    expected = [0b1001, 0b01]
    for name, kernels in kernel_sets:
        kern = use(kernels)
        bits = torch.empty(1, 1, 2, dtype=torch.int64)
        kern.pack_signs(x, torch.zeros(1, 67), bits, None, None, None)
        assert bits.view(-1).tolist() == expected, name


@pytest.mark.parametrize("pairs", [1, 2])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("b,h,w,c", [(2, 5, 9, 3), (1, 1, 2, 70), (1, 3, 1, 5), (2, 8, 13, 33)])
def test_token_conv_equals_padded_conv(kernel_sets, pairs, axis, b, h, w, c):
    g = torch.Generator().manual_seed(b + h * 10 + w * 100 + c + pairs + axis)
    cs = c * pairs
    planes = torch.where(torch.rand(b, h, w, cs, generator=g) < 0.5, -1, 1).to(torch.int8)
    taps = torch.where(torch.rand(7, cs, generator=g) < 0.5, -1, 1).to(torch.int8)
    # reference: grouped conv2d on ±1 floats with zero padding 3 along the conv axis
    weight = taps.to(torch.float64).T.reshape(c, pairs, 1, 7)
    padding = (0, 3)
    if axis == 1:
        weight, padding = weight.transpose(2, 3), (3, 0)
    expected = F.conv2d(planes.permute(0, 3, 1, 2).to(torch.float64), weight, None, 1, padding,
                        1, c).permute(0, 2, 3, 1).reshape(-1, c)
    for name, kernels in kernel_sets:
        kern = use(kernels)
        out = torch.full((b * h * w, c), float("nan"))
        kern.sconv(planes, taps, axis, pairs, torch.ones(c), torch.zeros(c), 0, None, 1, None, out)
        assert torch.equal(out.to(torch.float64), expected), f"{name}: token conv differs"


# (M, K, N, shortcut kind, group, norm0/act1 params): identity, tile from K channels (K a multiple
# of 16 or not), group mean, none; M past the 6-row tiles, N past the 16-column panels.
EPILOGUE_CASES = [(29, 70, 70, 1, 1, False), (29, 70, 140, 2, 1, True), (29, 70, 35, 3, 2, False),
                  (29, 70, 35, 3, 2, True), (29, 70, 10, 3, 7, False), (29, 70, 70, 0, 1, False),
                  (61, 64, 256, 2, 1, True), (61, 64, 192, 2, 1, False), (61, 256, 64, 3, 4, True),
                  (61, 320, 80, 3, 4, False), (61, 96, 40, 0, 1, False), (7, 48, 48, 1, 1, False)]


@pytest.mark.parametrize("m,k,n,kind,group,with_params", EPILOGUE_CASES)
def test_epilogue_kinds_agree_with_fallback(kernel_sets, m, k, n, kind, group, with_params):
    """Scale/bias, every shortcut kind (with and without norm0/act1), PReLU, residual mix. The
    native instruction sets (register epilogue on AVX-512 and AVX2, buffered on portable) agree
    bit for bit."""
    g = torch.Generator().manual_seed(3 + m + k + n)
    x = torch.randn(m, k, generator=g)
    w = torch.randn(n, k, generator=g)
    alpha, beta = torch.randn(n, generator=g), torch.randn(n, generator=g)
    act = torch.stack([torch.rand(n, generator=g), torch.randn(n, generator=g)])
    params = torch.randn(4, n, generator=g) if with_params else None
    base, e1, e2 = (torch.randn(m, n, generator=g) for _ in range(3))
    outs = []
    for name, kernels in kernel_sets:
        kern = use(kernels)
        bits = torch.empty(1, m, (k + 63) // 64, dtype=torch.int64)
        kern.pack_signs(x, torch.zeros(1, k), bits, None, None, None)
        out = torch.empty(m, n)
        kern.bgemm(bits[0], kern.make_panels(_words_from_negative(w < 0)), k, alpha, beta,
                   kind, x if kind else None, group, params, act, base, 0.7, e1, 0.2, e2,
                   -0.3, out)
        outs.append((name, out))
    for name, out in outs[1:]:
        torch.testing.assert_close(out, outs[0][1], rtol=1e-5, atol=1e-5, msg=name)
        assert torch.equal(out, outs[-1][1]), f"{name} and {outs[-1][0]} differ"


# The engine's epilogues without a residual mix (front units, re-weighting MLP, the channel MLP's
# fc1) and with one (projection, fc2), and other shortcut forms, each with and without norm0/act1
# params and an activation: the AVX2 kernels specialize their loops for the engine's combinations
# and take a generic loop for the rest. (M, K, N, shortcut kind, group): tiles of a multiple of 8
# but not 16 source channels and of 16, group means of 4 (N a multiple of 8 or not) and of 3,
# N % 16 = 8 and N % 8 != 0 (masked last columns), M odd (the single-row tile).
COMBINATION_SHAPES = [(13, 24, 72, 2, 1), (13, 16, 48, 2, 1), (9, 256, 64, 3, 4), (9, 84, 21, 3, 4),
                      (9, 72, 24, 3, 3), (9, 50, 50, 1, 1), (9, 50, 40, 0, 1)]


@pytest.mark.parametrize("mix", [False, True])
@pytest.mark.parametrize("act", [False, True])
@pytest.mark.parametrize("params", [False, True])
@pytest.mark.parametrize("m,k,n,kind,group", COMBINATION_SHAPES)
def test_epilogue_combinations_agree_across_kernels(kernel_sets, m, k, n, kind, group, params,
                                                    act, mix):
    if params and kind == 0:
        pytest.skip("shortcut params need a shortcut")
    g = torch.Generator().manual_seed(7 + m + k + n + kind)
    x = random_input(m, k, g)
    w = torch.randn(n, k, generator=g)
    alpha, beta = torch.randn(n, generator=g), torch.randn(n, generator=g)
    act_t = torch.stack([torch.rand(n, generator=g), torch.randn(n, generator=g)]) if act else None
    params_t = torch.randn(4, n, generator=g) if params else None
    base, e1, e2 = (torch.randn(m, n, generator=g) for _ in range(3)) if mix else (None, None, None)
    outs = []
    for name, kernels in kernel_sets:
        kern = use(kernels)
        bits = torch.empty(1, m, (k + 63) // 64, dtype=torch.int64)
        kern.pack_signs(x, torch.zeros(1, k), bits, None, None, None)
        out = torch.full((m, n), float("nan"))
        kern.bgemm(bits[0], kern.make_panels(_words_from_negative(w < 0)), k, alpha, beta, kind,
                   x if kind else None, group, params_t, act_t, base, 0.7 if mix else 1.0, e1, 0.2,
                   e2, -0.3, out)
        outs.append((name, out))
    for name, out in outs[1:]:
        torch.testing.assert_close(out, outs[0][1], rtol=1e-5, atol=1e-5, msg=name)
        assert torch.equal(out, outs[-1][1]), f"{name} and {outs[-1][0]} differ"


@pytest.mark.parametrize("act", [False, True])
@pytest.mark.parametrize("kind,group", [(0, 1), (1, 1), (2, 1), (3, 4), (3, 3)])
@pytest.mark.parametrize("pairs,c", [(1, 40), (2, 20), (1, 72), (2, 36), (1, 64)])
def test_token_conv_shortcuts_agree_across_kernels(kernel_sets, pairs, c, kind, group, act):
    """Token conv with every shortcut kind (tile from c/4 channels, a mean of `group`), with and
    without activation; channel counts past whole 32-byte registers (the AVX2 tail)."""
    g = torch.Generator().manual_seed(c + pairs + kind)
    b, h, w = 1, 5, 9
    planes = torch.where(torch.rand(b, h, w, c * pairs, generator=g) < 0.5, -1, 1).to(torch.int8)
    taps = torch.where(torch.rand(7, c * pairs, generator=g) < 0.5, -1, 1).to(torch.int8)
    alpha, beta = torch.randn(c, generator=g), torch.randn(c, generator=g)
    src = {0: 0, 1: c, 2: c // 4, 3: c * group}[kind]
    res = torch.randn(b * h * w, src, generator=g) if kind else None
    act_t = torch.stack([torch.rand(c, generator=g), torch.randn(c, generator=g)]) if act else None
    outs = []
    for name, kernels in kernel_sets:
        kern = use(kernels)
        for axis in (0, 1):
            out = torch.full((b * h * w, c), float("nan"))
            kern.sconv(planes, taps, axis, pairs, alpha, beta, kind, res, group, act_t, out)
            outs.append((f"{name} axis {axis}", out))
    for i, (name, out) in enumerate(outs):
        torch.testing.assert_close(out, outs[i % 2][1], rtol=1e-5, atol=1e-5, msg=name)
        assert torch.equal(out, outs[len(outs) - 2 + i % 2][1]) or name.startswith("torch"), name


@pytest.mark.parametrize("pairs,c", [(1, 70), (2, 40), (2, 8), (1, 128)])
def test_token_conv_epilogue_agrees_across_kernels(kernel_sets, pairs, c):
    """Token conv with scale/bias, identity shortcut and PReLU: every native instruction set gives
    the same bits (register epilogue on AVX-512 and AVX2), close to the PyTorch fallback."""
    g = torch.Generator().manual_seed(c + pairs)
    b, h, w = 2, 6, 11
    planes = torch.where(torch.rand(b, h, w, c * pairs, generator=g) < 0.5, -1, 1).to(torch.int8)
    taps = torch.where(torch.rand(7, c * pairs, generator=g) < 0.5, -1, 1).to(torch.int8)
    alpha, beta, res = torch.randn(c, generator=g), torch.randn(c, generator=g), torch.randn(b * h * w, c, generator=g)
    act = torch.stack([torch.rand(c, generator=g), torch.randn(c, generator=g)])
    outs = []
    for name, kernels in kernel_sets:
        kern = use(kernels)
        for axis in (0, 1):
            out = torch.full((b * h * w, c), float("nan"))
            kern.sconv(planes, taps, axis, pairs, alpha, beta, 1, res, 1, act, out)
            outs.append((f"{name} axis {axis}", out))
    for i, (name, out) in enumerate(outs):
        torch.testing.assert_close(out, outs[i % 2][1], rtol=1e-5, atol=1e-5, msg=name)
        assert torch.equal(out, outs[len(outs) - 2 + i % 2][1]) or name.startswith("torch"), name


@pytest.mark.parametrize("h,w", [(8, 8), (7, 9), (1, 1), (2, 3), (13, 6)])
def test_pool_mix_matches_same_max_pools(kernel_sets, h, w):
    x = torch.randn(2, 5, h, w)
    expected = sum(same_max_pool(x, k, 2) for k in (2, 3, 5, 7)) / 4
    for name, kernels in kernel_sets:
        kern = use(kernels)
        out = torch.empty(2, (h + 1) // 2, (w + 1) // 2, 5)
        kern.pool_mix(x.permute(0, 2, 3, 1).contiguous(), out)
        torch.testing.assert_close(out.permute(0, 3, 1, 2), expected, rtol=0, atol=1e-6, msg=name)


def test_native_sincos_close_to_torch():
    mod = native()
    if mod is None:
        pytest.skip("native kernels unavailable")
    x = torch.cat([torch.randn(10000) * 3, torch.linspace(-200, 200, 10001)])
    s, c = torch.empty_like(x), torch.empty_like(x)
    mod.sincos(x, s, c)
    assert (s - torch.sin(x)).abs().max() < 2e-7
    assert (c - torch.cos(x)).abs().max() < 2e-7


def test_build_failure_falls_back_with_warning(monkeypatch):
    import torch.utils.cpp_extension as cpp

    import bimlp.deploy.kernels as kernels

    def broken(*args, **kwargs):
        raise RuntimeError("Error building extension 'bimlp_kernels'\nfoo.cpp:1:1: error: no compiler")

    monkeypatch.setattr(kernels, "_state", {})
    monkeypatch.setattr(cpp, "load", broken)
    with pytest.warns(RuntimeWarning, match="no compiler"):
        assert kernels.native() is None
    assert "no compiler" in kernels.native_error()
    from bimlp.deploy.engine import select_kernels
    from bimlp.deploy.kernels.fallback import TorchKernels

    assert isinstance(select_kernels("auto"), TorchKernels)
    with pytest.raises(RuntimeError, match="unavailable"):
        select_kernels("native")


def test_native_kernels_really_run_on_several_threads():
    # at::parallel_for in an extension built without -fopenmp silently runs serially
    mod = native()
    if mod is None:
        pytest.skip("native kernels unavailable")
    import bimlp.deploy.kernels as kernels

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        used = mod.parallel_threads(64)
    finally:
        torch.set_num_threads(threads)
    assert used == (2 if kernels._torch_uses_openmp() else 1)


def test_compiler_without_openmp_builds_serial_kernels_with_warning(monkeypatch):
    import torch.utils.cpp_extension as cpp

    import bimlp.deploy.kernels as kernels

    built = []

    def no_openmp(*args, **kwargs):
        if "-fopenmp" in kwargs["extra_cflags"]:
            raise RuntimeError("foo.cpp:1:1: error: unsupported option '-fopenmp'")
        built.append(kwargs["name"])
        return "serial-module"

    monkeypatch.setattr(kernels, "_state", {})
    monkeypatch.setattr(kernels, "_torch_uses_openmp", lambda: True)
    monkeypatch.setattr(cpp, "load", no_openmp)
    with pytest.warns(RuntimeWarning, match="without OpenMP.*-fopenmp"):
        assert kernels.native() == "serial-module"
    assert built == ["bimlp_kernels_serial"] and kernels.native_error() is None
