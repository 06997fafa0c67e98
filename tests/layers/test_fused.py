"""The fast training path equals the reference modules: outputs, every gradient, BN statistics.

Kernel by kernel (each fused function against the plain modules it replaces, including the
points where the piecewise functions switch), then whole models: every binary family in both
numerical modes and both recipe steps, fast path against reference, in float64 so that the only
differences left are the rounding of a different summation order.
"""

from __future__ import annotations

import collections
import copy

import pytest
import torch

import bimlp
from bimlp.layers import (
    BatchNorm2d,
    BinaryConv2d,
    LearnableBias,
    RPReLU,
    UniShortcut,
    fused,
)
from bimlp.layers.fused import binary_unit, rprelu, step_mask, unit_tail
from bimlp.layers.quantizers import ApproxSign, TernaryRound

# values on both sides of every switching point: 0, -0, +-1 (the quantizers' clip), and around
EDGES = torch.tensor([0.0, -0.0, 1.0, -1.0, 1e-30, -1e-30, 0.5, -0.5, 1.5, -1.5, 2.0, -3.0],
                     dtype=torch.float64)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny float64 models: threads only add synchronisation (and stall on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _input(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 1.5
    flat = x.view(-1)
    flat[: EDGES.numel()] = EDGES
    return x


def test_step_mask_is_one_exactly_where_positive() -> None:
    x = _input((3, 4, 5, 6))
    assert torch.equal(step_mask(x), (x > 0).to(x.dtype))


@pytest.mark.parametrize("channels_last", [False, True])
def test_rprelu_matches_the_module(channels_last: bool) -> None:
    torch.manual_seed(0)
    ref = RPReLU(6).double()
    with torch.no_grad():
        ref.move1.bias.normal_()
        ref.act.weight.uniform_(-0.5, 0.9)
        ref.move2.bias.normal_()
    x = _input((4, 6, 5, 3))
    with torch.no_grad():  # put some shifted inputs exactly on the PReLU's kink
        x[:, :, 0, 0] = -ref.move1.bias.view(1, 6)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    grad = _input((4, 6, 5, 3), seed=1)

    xr, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ref = ref(xr)
    params = [p.detach().clone().requires_grad_() for p in
              (ref.move1.bias, ref.act.weight, ref.move2.bias)]
    out_fast = rprelu(xf, *params)
    assert torch.equal(out_fast, out_ref)
    out_ref.backward(grad)
    out_fast.backward(grad)
    torch.testing.assert_close(xf.grad, xr.grad, rtol=0, atol=0)
    for mine, theirs in zip(params, (ref.move1.bias, ref.act.weight, ref.move2.bias),
                            strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", [ApproxSign, TernaryRound])
def test_activation_quantizers_match_bit_for_bit(kind) -> None:
    reference, fast = kind(), kind()
    fast.fused = True
    x = _input((2, 3, 4, 5))
    grad = _input((2, 3, 4, 5), seed=2)
    xr, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ref, out_fast = reference(xr), fast(xf)
    assert torch.equal(out_fast, out_ref)
    out_ref.backward(grad)
    out_fast.backward(grad)
    assert torch.equal(xf.grad, xr.grad)


def _kernels_or_skip() -> None:
    if fused.cpu_kernels() is None:
        pytest.skip(f"the fast path's C++ kernels could not be built here: "
                    f"{fused.cpu_kernels_error()}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(4, 6, 5, 3), (8, 6, 1, 1), (1, 6, 1, 1)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shortcut", [True, False])
def test_unit_tail_kernel_matches_the_modules(dtype, shape, training, shortcut) -> None:
    """act(bn(y) + s) in C++ against BatchNorm2d + add + RPReLU: output, the gradients of y, s
    and all five parameters, the running statistics (also one value per channel: (1, C, 1, 1))."""
    _kernels_or_skip()
    torch.manual_seed(0)
    bn, act = BatchNorm2d(6).to(dtype).train(training), RPReLU(6).to(dtype)
    with torch.no_grad():
        for p in (bn.weight, bn.bias, act.move1.bias, act.move2.bias):
            p.normal_()
        act.act.weight.uniform_(-0.5, 0.9)
        bn.running_var.uniform_(0.5, 2.0)
        bn.running_mean.normal_()
    bn_f, act_f = copy.deepcopy(bn), copy.deepcopy(act)
    act_f.fused = True
    y = torch.randn(shape, dtype=dtype).contiguous(memory_format=torch.channels_last)
    s = torch.randn(shape, dtype=dtype) if shortcut else None
    grad = torch.randn(shape, dtype=dtype)
    leaves = []
    outs = []
    for b, a in ((bn, act), (bn_f, act_f)):
        yy = y.clone().requires_grad_()
        ss = s.clone().requires_grad_() if s is not None else None
        out = unit_tail(yy, ss, b, a)
        out.backward(grad)
        outs.append(out)
        leaves.append([yy, ss, *b.parameters(), *a.parameters()])
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-5)
    _assert_same_results(outs, leaves, (bn_f.buffers(), bn.buffers()), tol)


def _assert_same_results(outs, leaves, buffers, tol) -> None:
    """Fast (index 1) against reference (index 0): outputs, every leaf's gradient, buffers."""
    torch.testing.assert_close(outs[1], outs[0], **tol)
    for mine, ref in zip(leaves[1], leaves[0], strict=True):
        if ref is not None:
            torch.testing.assert_close(mine.grad, ref.grad, **tol)
    for mine, ref in zip(*buffers, strict=True):
        torch.testing.assert_close(mine, ref, **tol)


# (shortcut, shifted, C_in, C_out, kernel, groups): every way BiMLP's units read their shortcut
UNIT_SHORTCUTS = {
    "identity of u": ("identity", True, 6, 6, 1, 1),
    "pair mean of u, grouped 1x3": ("mean", True, 12, 6, (1, 3), 6),
    "mean of 4 of x": ("mean", False, 12, 3, 1, 1),
    "tile of u": ("tile", True, 3, 6, 1, 1),
    "tensor": ("tensor", True, 6, 6, 1, 1),
    "none": (None, True, 6, 6, (3, 1), 2),
}


@pytest.mark.parametrize("quantizer", ["approx_sign", "ternary_round"])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("case", list(UNIT_SHORTCUTS))
def test_binary_unit_matches_the_modules(case: str, training: bool, quantizer: str) -> None:
    """act(bn(conv(move(x))) + S) as one node against the modules: output, the gradients of x,
    of the shortcut tensor and of every parameter, the running statistics."""
    _unit_against_modules(case, training, quantizer, (4, 5, 3))


@pytest.mark.parametrize("case", ["identity of u", "mean of 4 of x", "tile of u", "tensor"])
def test_binary_unit_splits_rows_over_threads(case: str) -> None:
    """With 2 threads the kernels split 4,096 rows (16 tasks of parallel_for, per-chunk sums):
    the same results as the modules, so no two threads write the same row or partial sum."""
    torch.set_num_threads(2)  # the autouse fixture restores the count
    _unit_against_modules(case, True, "approx_sign", (16, 16, 16))


def _unit_against_modules(case: str, training: bool, quantizer: str,
                          size: tuple[int, int, int]) -> None:
    _kernels_or_skip()
    batch, height, width = size
    kind, shifted, cin, cout, kernel, groups = UNIT_SHORTCUTS[case]
    torch.manual_seed(0)
    move = LearnableBias(cin).double()
    pad = tuple(k // 2 for k in kernel) if isinstance(kernel, tuple) else 0
    conv = BinaryConv2d(cin, cout, kernel, padding=pad, groups=groups,
                        input_quantizer=quantizer).double()
    bn, act = BatchNorm2d(cout).double().train(training), RPReLU(cout).double()
    with torch.no_grad():
        for p in (move.bias, bn.weight, bn.bias, act.move1.bias, act.move2.bias):
            p.normal_()
        act.act.weight.uniform_(-0.5, 0.9)
        bn.running_var.uniform_(0.5, 2.0)
    ref = torch.nn.ModuleList([move, conv, bn, act])
    fast = copy.deepcopy(ref)
    for m in fast.modules():
        if hasattr(m, "fused"):
            m.fused = True
    shortcut = None if kind in (None, "tensor") else (
        "identity" if kind == "identity" else UniShortcut(cin, cout))
    x = _input((batch, cin, height, width)).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():  # some shifted inputs exactly on the quantizers' switching points
        x[0, :, 0, 0] = -move.bias.view(-1)
        x[0, :, 0, 1] = 1.0 - move.bias.view(-1)
    s = _input((batch, cout, height, width), seed=3) if kind == "tensor" else None
    grad = _input((batch, cout, height, width), seed=1)
    outs, leaves = [], []
    for mods in (ref, fast):
        xx = x.clone().requires_grad_()
        ss = s.clone().requires_grad_() if s is not None else None
        out = binary_unit(xx, *mods, shortcut=shortcut, shifted=shifted, s=ss)
        out.backward(grad)
        outs.append(out)
        leaves.append([xx, ss, *mods.parameters()])
    assert type(outs[1].grad_fn).__name__ == "_BinaryUnitFnBackward"  # the one-node unit ran
    _assert_same_results(outs, leaves, (fast.buffers(), ref.buffers()),
                         dict(rtol=1e-12, atol=1e-12))


# every binary family, both numerical modes, both recipe steps (binary_weights False / True),
# at small widths: float64 convolutions have no fast CPU kernels
SMALL_MLP = dict(depths=(1, 1, 2, 1), dims=(8, 16, 16, 24), stem_stride=2)
SMALL_REACTNET = dict(stem_dim=8, dims=(16, 32, 32, 64), stem_stride=1)
CASES = {
    "bimlp paper step 1": ("bimlp_xs", dict(binary_weights=False)),
    "bimlp paper step 2": ("bimlp_xs", {}),
    "bimlp official step 1": ("bimlp_xs", dict(mode="official", binary_weights=False)),
    "bimlp official step 2": ("bimlp_xs", dict(mode="official")),
    "naive step 2": ("bimlp_xs", dict(multi_branch=False, uni_shortcut=False,
                                      downsample="wavemlp")),
    "bimlp groupnorm": ("bimlp_xs", dict(norm="group")),
    "reactnet step 1": ("reactnet_a_xs", dict(binary_weights=False)),
    "reactnet step 2": ("reactnet_a_xs", {}),
    "wavemlp (teacher)": ("wavemlp_xs", {}),
}


def _pair(name: str, kwargs: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    size = SMALL_REACTNET if name.startswith("reactnet") else SMALL_MLP
    ref = bimlp.create_model(name, num_classes=10, in_chans=1, **size, **kwargs)
    ref = ref.double().train()
    with torch.no_grad():  # move every parameter off its (often zero or one) initial value
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    fast = copy.deepcopy(ref).set_fast_path()
    return ref, fast


# the PyTorch-op fast path (where the C++ kernels cannot be built) on one case of each family
RUNS = [(case, "C++") for case in CASES] + [
    (case, "PyTorch ops") for case in ("bimlp paper step 2", "reactnet step 2")]


@pytest.mark.parametrize(("case", "kernels"), RUNS)
def test_fast_path_equals_the_reference(case: str, kernels: str, monkeypatch) -> None:
    if kernels == "C++":
        _kernels_or_skip()
    else:  # where the C++ kernels cannot be built, the fast path runs on PyTorch operations
        monkeypatch.setattr(fused, "cpu_kernels", lambda: None)
    ref, fast = _pair(*CASES[case])
    assert fast.fast_path and not ref.fast_path
    x = torch.randn(4, 1, 16, 16, dtype=torch.float64)  # maps 8/4/2/1 (ReActNet 16 ... 2)
    for _ in range(2):  # two steps: the second one sees updated BN running statistics too
        out_ref, out_fast = ref(x), fast(x)
        torch.testing.assert_close(out_fast, out_ref, rtol=1e-9, atol=1e-9)
        out_ref.square().sum().backward()
        out_fast.square().sum().backward()
    grads = dict(ref.named_parameters())
    scale = max(p.grad.abs().max().item() for p in grads.values() if p.grad is not None)
    for name, p in fast.named_parameters():
        theirs = grads[name].grad
        assert (p.grad is None) == (theirs is None), name
        if theirs is not None:  # relative to the largest gradient: some are zero by design
            torch.testing.assert_close(p.grad, theirs, rtol=1e-7, atol=1e-9 * scale,
                                       msg=lambda m, n=name: f"{n}: {m}")
    for (name, mine), theirs in zip(fast.named_buffers(), ref.buffers(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-9, atol=1e-9, msg=name)
    fast.eval(), ref.eval()
    with torch.no_grad():
        torch.testing.assert_close(fast(x), ref(x), rtol=1e-9, atol=1e-9)


def test_fast_path_switches_back_and_keeps_the_checkpoint() -> None:
    ref, fast = _pair("bimlp_xs", {})
    assert fast.state_dict().keys() == ref.state_dict().keys()
    for (name, a), b in zip(fast.state_dict().items(), ref.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert fast.patch_embed.proj.weight.is_contiguous(memory_format=torch.channels_last)
    fast.set_fast_path(False)
    assert fast.patch_embed.proj.weight.is_contiguous()
    assert not any(getattr(m, "fused", False) for m in fast.modules())


def test_kernels_build_without_openmp_when_the_compiler_lacks_it(monkeypatch) -> None:
    """The C++ kernels are built with -fopenmp first; where that build fails (a compiler without
    OpenMP) the one-thread build is tried before giving up, and a total failure is reported."""
    from torch.utils import cpp_extension

    calls = []

    def load(name, sources, extra_cflags, extra_ldflags, verbose):
        calls.append((name, list(extra_cflags), list(extra_ldflags)))
        if "-fopenmp" in extra_cflags:
            raise RuntimeError("omp.h: No such file or directory")
        return "the one-thread module"

    monkeypatch.setattr(cpp_extension, "load", load)
    monkeypatch.setattr(fused, "_ext", None)
    monkeypatch.setattr(fused, "_ext_error", None)
    assert fused.cpu_kernels() == "the one-thread module"
    assert [c[0].endswith("_omp") for c in calls] == [True, False]
    assert "-fopenmp" not in calls[1][1] and not calls[1][2]
    assert fused.cpu_kernels_error() is None

    monkeypatch.setattr(cpp_extension, "load", lambda **kw: (_ for _ in ()).throw(OSError("no g++")))
    monkeypatch.setattr(fused, "_ext", None)
    monkeypatch.setattr(fused, "_ext_error", None)
    assert fused.cpu_kernels() is None
    assert "no g++" in fused.cpu_kernels_error()



def test_cpu_level_is_the_best_the_cpu_runs_or_the_lower_one_asked_for(monkeypatch) -> None:
    """The kernels are built for the best x86-64 level the CPU's flags allow; BIMLP_CPU_LEVEL
    picks a lower one, and an unknown level or one the CPU cannot run is an error naming it."""
    avx2 = {"sse2", "avx2", "fma", "bmi2"}
    monkeypatch.delenv("BIMLP_CPU_LEVEL", raising=False)
    monkeypatch.setattr(fused, "_cpu_flags", lambda: avx2 | {"avx512f", "avx512bw", "avx512dq", "avx512vl"})
    assert fused._cpu_level() == "v4"
    monkeypatch.setattr(fused, "_cpu_flags", lambda: avx2)
    assert fused._cpu_level() == "v3"
    monkeypatch.setattr(fused, "_cpu_flags", lambda: {"sse2"})
    assert fused._cpu_level() == "generic"
    monkeypatch.setattr(fused, "_cpu_flags", lambda: None)  # no /proc/cpuinfo
    assert fused._cpu_level() == "generic"

    monkeypatch.setattr(fused, "_cpu_flags", lambda: avx2)
    monkeypatch.setenv("BIMLP_CPU_LEVEL", "generic")
    assert fused._cpu_level() == "generic"
    monkeypatch.setenv("BIMLP_CPU_LEVEL", "v4")
    with pytest.raises(ValueError, match="BIMLP_CPU_LEVEL=v4: this CPU lacks avx512bw"):
        fused._cpu_level()
    monkeypatch.setenv("BIMLP_CPU_LEVEL", "avx9")
    with pytest.raises(ValueError, match="BIMLP_CPU_LEVEL=avx9 is not a level"):
        fused._cpu_level()

    # the level reaches the compiler, and the build is named after it
    from torch.utils import cpp_extension

    calls = []

    def load(name, sources, extra_cflags, extra_ldflags, verbose):
        calls.append((name, list(extra_cflags)))
        return "module"

    monkeypatch.setattr(cpp_extension, "load", load)
    monkeypatch.setattr(fused, "_ext", None)
    monkeypatch.setattr(fused, "_ext_error", None)
    monkeypatch.setenv("BIMLP_CPU_LEVEL", "v3")
    assert fused.cpu_kernels() == "module"
    name, cflags = calls[0]
    assert name == "bimlp_unit_v3_omp" and "-march=x86-64-v3" in cflags
    assert "-O3" in cflags and "-fopenmp" in cflags and "-fno-trapping-math" in cflags

# --- the C++ kernels under torch.compile, as the bimlp:: custom ops ---------------------------
def _op_samples(dtype: torch.dtype) -> list[tuple[object, tuple, dict]]:
    """(op, args, kwargs) for torch.library.opcheck: every op, with and without a shortcut, in
    training and in evaluation (channels-last inputs, as the autograd functions pass them)."""
    cl = torch.channels_last
    g = torch.Generator().manual_seed(0)

    def rows(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=g, dtype=dtype).contiguous(memory_format=cl)

    def vec(c: int) -> torch.Tensor:
        return torch.randn(c, generator=g, dtype=dtype)

    ops = torch.ops.bimlp
    c = 6
    y, x, gq = rows(2, c, 3, 4), rows(2, c, 3, 4), rows(2, c, 3, 4)
    src = rows(2, 2 * c, 3, 4)  # a pair-mean shortcut's source
    params = [vec(c) for _ in range(5)]  # gamma, beta, b1, a, b2
    gamma, beta, b1, a, b2 = params
    samples = [(ops.head_forward, (x, vec(c), q), {}) for q in (0, 1)]
    samples += [(ops.head_backward, (gq, x, vec(c), 0, rows(2, c, 3, 4), acc, acc), {})
                for acc in (False, True)]
    for training in (True, False):
        for s, s_bias, s_map, f in ((None, None, 0, 1), (src, vec(2 * c), 1, 2)):
            running = [vec(c), vec(c).abs() + 0.5]
            samples.append((ops.tail_forward, (y, s, s_bias, s_map, f, gamma, beta, *running,
                                               training, 0.1, 1e-5, b1, a, b2), {}))
            _, mean, invstd, scale, shift = fused._tail_forward(
                y, s, s_bias, s_map, f, gamma, beta, *[r.clone() for r in running], training,
                0.1, 1e-5, b1, a, b2)
            samples.append((ops.tail_backward, (rows(2, c, 3, 4), y, s, s_bias, s_map, f, scale,
                                                shift, a, mean, invstd, gamma, training), {}))
    return samples


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_custom_ops_pass_opcheck(dtype) -> None:
    """The bimlp:: ops' schemas (what they mutate), fake implementations (shapes, strides,
    dtypes) and their tracing by AOTAutograd agree with the C++ kernels."""
    _kernels_or_skip()
    for op, args, kwargs in _op_samples(dtype):
        torch.library.opcheck(op, args, kwargs)


def _compile_pair(backend: str) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    """A small float32 BiMLP (reference) and its fast path, eager and compiled in one graph."""
    torch.manual_seed(0)
    ref = bimlp.create_model("bimlp_xs", num_classes=10, in_chans=1, **SMALL_MLP).train()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    fast = copy.deepcopy(ref).set_fast_path()
    return ref, fast, torch.compile(fast, backend=backend, fullgraph=True)


@pytest.mark.parametrize("backend", [
    "aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compiled_fast_path_equals_the_reference(backend: str, monkeypatch) -> None:
    """torch.compile traces the fast path in one graph (fullgraph: no graph break) with the C++
    kernels as opaque ops (all six ran), and it equals the reference modules in float32:
    outputs, every parameter's gradient over two steps (accumulated), the BN buffers.
    ``aot_eager`` checks the tracing (the ops' mutations and aliasing); ``inductor`` also its
    code generation (in place where an op mutates)."""
    _kernels_or_skip()
    calls = collections.Counter()

    class Counting:  # the extension, counting the kernels the compiled graph calls
        def __getattr__(self, name):
            calls[name] += 1
            return getattr(ext, name)

    ext = fused.cpu_kernels()
    monkeypatch.setattr(fused, "_ext", Counting())
    ref, fast, compiled = _compile_pair(backend)
    x = torch.randn(4, 1, 16, 16)
    for _ in range(2):
        out_ref, out_fast = ref(x), compiled(x)
        torch.testing.assert_close(out_fast, out_ref, rtol=1e-4, atol=1e-4)
        out_ref.square().sum().backward()
        out_fast.square().sum().backward()
    kernels = ("head_forward", "head_backward", "tail_forward", "tail_backward",
               "token_conv_forward", "token_conv_backward")
    assert all(calls[k] > 0 for k in kernels), calls
    grads = dict(ref.named_parameters())
    scale = max(p.grad.abs().max().item() for p in grads.values() if p.grad is not None)
    for name, p in fast.named_parameters():
        theirs = grads[name].grad
        assert (p.grad is None) == (theirs is None), name
        if theirs is not None:  # float32 through a dozen binary layers: the eager fast path
            # differs from the reference by up to 7e-5 of the largest gradient here
            torch.testing.assert_close(p.grad, theirs, rtol=1e-4, atol=2e-4 * scale,
                                       msg=lambda m, n=name: f"{n}: {m}")
    for (name, mine), theirs in zip(fast.named_buffers(), ref.buffers(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5, msg=name)
