"""Benchmark: the packed 1-bit engine against the same network in float32 PyTorch.

The float baseline is :func:`bimlp.deploy.simulate` (binarized weights materialized once,
activations signed in the graph), run eagerly and through ``torch.compile``; all engines use the
same weights, inputs, thread count and process. Reported: end-to-end medians, per-layer times of
the binary layers (float: sign + conv; packed: GEMM / token conv with its fused epilogue), isolated
1x1 layers, artifact and checkpoint sizes, and peak memory (each engine in a fresh process).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..layers import sign_plus

__all__ = ["benchmark", "print_report"]


def _median_ms(fn: Callable[[], Any], repeats: int, budget_s: float, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 3 and time.perf_counter() - start > budget_s:
            break
    return 1e3 * statistics.median(times)


def _float_layer_times(sim: torch.nn.Module, x: torch.Tensor, runs: int) -> dict[str, float]:
    from .simulate import SignedConv2d

    times: dict[str, list[float]] = defaultdict(list)
    handles = []
    for name, mod in sim.named_modules():
        if isinstance(mod, SignedConv2d):
            def pre(m, inp, name=name):
                m._t0 = time.perf_counter()

            def post(m, inp, out, name=name):
                times[name].append(time.perf_counter() - m._t0)

            handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    with torch.inference_mode():
        for _ in range(runs):
            sim(x)
    for h in handles:
        h.remove()
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def _packed_layer_times(packed, x: torch.Tensor, runs: int) -> dict[str, float]:
    per_run: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        t: dict[str, list[float]] = {}
        packed(x, times=t)
        for k, v in t.items():
            per_run[k].append(sum(v))
    return {k: 1e3 * statistics.median(v) for k, v in per_run.items()}


def _float_1x1(x4: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return F.conv2d(sign_plus(x4), w)


def _float_unit(x4: torch.Tensor, w: torch.Tensor, bn: tuple[torch.Tensor, ...], identity: bool,
                act: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The whole binary unit as the float model runs it: sign, conv, BatchNorm, shortcut, RPReLU
    (what the packed layer's fused epilogue computes)."""
    y = F.batch_norm(F.conv2d(sign_plus(x4), w), *bn, training=False, eps=1e-5)
    if identity:
        y = y + x4
    move1, slope, move2 = act
    return F.prelu(y + move1, slope) + move2


def _packed_1x1(kern, conv, x2, thr, bits, kind, out) -> torch.Tensor:
    kern.pack_signs(x2, thr, bits, None, None, None)
    kern.bgemm(bits[0], conv._panels, conv.in_channels, conv.alpha, conv.beta, kind,
               x2 if kind else None, 1, None, conv.act, None, 1.0, None, 0.0, None, 0.0, out)
    return out


def _one_by_one(packed, batch: int, size: int, repeats: int) -> list[dict[str, Any]]:
    """Isolated binary 1x1 layers at their real shapes: float sign + conv2d vs pack + GEMM."""
    from .engine import RES_IDENTITY, RES_NONE, PackedBlock, PackedDownsample

    kern = packed.kernels
    rows = []
    res = (size + 4 - 7) // 4 + 1
    stage = 0
    seen = set()
    for layer in packed.network:
        if isinstance(layer, PackedDownsample):
            res, stage = (res + 1) // 2, stage + 1
            continue
        block: PackedBlock = layer[0]
        for name, conv in (("attn.fc_h", block.attn.fc_h), ("mlp.fc1", block.mlp.fc1),
                           ("mlp.fc2", block.mlp.fc2)):
            key = (stage, conv.in_channels, conv.out_channels)
            if key in seen:
                continue
            seen.add(key)
            k, n, m = conv.in_channels, conv.out_channels, batch * res * res
            g = torch.Generator().manual_seed(0)
            x4 = torch.randn(batch, k, res, res, generator=g)
            w = torch.where(torch.randn(n, k, 1, 1, generator=g) >= 0, 1.0, -1.0) * 0.01

            x2 = x4.permute(0, 2, 3, 1).reshape(m, k).contiguous()
            bits = torch.empty(1, m, (k + 63) // 64, dtype=torch.int64)
            out = torch.empty(m, n)
            thr = conv.thresh.view(1, -1).contiguous()
            kind = RES_IDENTITY if k == n else RES_NONE
            float_layer = partial(_float_1x1, x4, w)
            bn = (torch.randn(n, generator=g), torch.rand(n, generator=g) + 0.5,
                  torch.randn(n, generator=g), torch.randn(n, generator=g))
            act = (torch.randn(1, n, 1, 1, generator=g), torch.rand(n, generator=g),
                   torch.randn(1, n, 1, 1, generator=g))
            float_unit = partial(_float_unit, x4, w, bn, k == n, act)
            packed_layer = partial(_packed_1x1, kern, conv, x2, thr, bits, kind, out)
            with torch.inference_mode():
                f_ms = _median_ms(float_layer, repeats, 5.0)
                u_ms = _median_ms(float_unit, repeats, 5.0)
                p_ms = _median_ms(packed_layer, repeats, 5.0)
            rows.append({"stage": stage, "layer": name, "M": m, "K": k, "N": n,
                         "float_ms": f_ms, "packed_ms": p_ms, "speedup": f_ms / p_ms,
                         "float_unit_ms": u_ms, "speedup_unit": u_ms / p_ms,
                         "float_gmacs": m * k * n / f_ms / 1e6,
                         "binary_gmacs": m * k * n / p_ms / 1e6})
    return rows


_CHILD = """
import torch
def hwm():  # peak resident set of this process image (VmHWM; ru_maxrss survives exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
torch.set_num_threads({threads})
x = torch.randn({batch}, {chans}, {size}, {size})
if {packed}:
    from bimlp.deploy import load
    model = load({path!r})
else:
    import bimlp
    from bimlp.deploy import simulate
    model = simulate(bimlp.create_model({name!r}, checkpoint={path!r}).eval())
loaded = hwm()
with torch.inference_mode():
    model(x); model(x)
print(loaded, hwm())
"""


def _peak_memory_mb(packed: bool, path: str, name: str, batch: int, chans: int, size: int,
                     threads: int) -> dict[str, float] | None:
    code = _CHILD.format(threads=threads, batch=batch, chans=chans, size=size, packed=packed,
                         path=path, name=name)
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=1800, check=True).stdout.split()
        loaded, peak = int(out[-2]) / 1024, int(out[-1]) / 1024
    except (subprocess.SubprocessError, ValueError, IndexError):
        return None
    return {"peak_rss_mb": peak, "inference_mb": peak - loaded}


def benchmark(model_name: str = "bimlp_s", checkpoint: str | None = None,
              batches: tuple[int, ...] = (1, 32), size: int = 224, threads: int | None = None,
              repeats: int = 5, use_compile: bool = True, memory: bool = True,
              layers: bool = True, budget_s: float = 90.0, log: Callable[[str], None] = print,
              all_isas: bool = False, **model_kwargs: Any) -> dict[str, Any]:
    """Run the comparison; returns ``{str(batch): {...}}`` with at least ``float_ms``,
    ``packed_ms`` and ``speedup`` per batch size."""
    import bimlp
    from bimlp.checkpoint import save_weights

    from .artifact import export
    from .pack import pack_model
    from .simulate import simulate

    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    model = bimlp.create_model(model_name, checkpoint=checkpoint, **model_kwargs).eval()
    sim = simulate(model)
    packed = pack_model(model)
    tmp = Path(tempfile.mkdtemp(prefix="bimlp-bench-"))
    art = export(packed, tmp / "model.bimlp")
    ckpt = save_weights(model, tmp / "float.safetensors")
    common = {
        "model": model_name, "image_size": size, "threads": threads, "kernels": packed.kernel_name,
        "cpu": _cpu_name(), "torch": torch.__version__,
        "artifact_bytes": art.stat().st_size, "float_checkpoint_bytes": ckpt.stat().st_size,
    }
    common["size_ratio"] = common["float_checkpoint_bytes"] / common["artifact_bytes"]
    chans = model.config.in_chans
    results: dict[str, Any] = {}
    for batch in batches:
        x = torch.randn(batch, chans, size, size, generator=torch.Generator().manual_seed(batch))
        r: dict[str, Any] = dict(common, batch=batch)
        with torch.inference_mode():
            ref = sim(x)
            out = packed(x)
        r["min_cosine_vs_float"] = float(F.cosine_similarity(out, ref, dim=1).min())
        r["same_argmax"] = bool((out.argmax(1) == ref.argmax(1)).all())
        log(f"[batch {batch}] float32 eager ...")
        with torch.inference_mode():
            r["float_ms"] = _median_ms(partial(sim, x), repeats, budget_s)
        log(f"[batch {batch}] packed engine ...")
        r["packed_ms"] = _median_ms(partial(packed, x), repeats, budget_s)
        r["speedup"] = r["float_ms"] / r["packed_ms"]
        if all_isas:
            r["packed_ms_by_isa"] = _time_each_isa(packed, x, repeats, budget_s, log)
        if use_compile:
            log(f"[batch {batch}] torch.compile (compiling) ...")
            compiled = torch.compile(sim)
            t0 = time.perf_counter()
            with torch.inference_mode():
                compiled(x)
                r["compile_s"] = time.perf_counter() - t0
                r["compile_ms"] = _median_ms(partial(compiled, x), repeats, budget_s, warmup=0)
            r["speedup_vs_compile"] = r["compile_ms"] / r["packed_ms"]
        if layers:
            log(f"[batch {batch}] per-layer times ...")
            runs = 3 if batch <= 4 else 1
            fl = _float_layer_times(sim, x, runs)
            pk = _packed_layer_times(packed, x, runs)
            r["layers"] = {k: {"float_ms": fl.get(k), "packed_ms": v} for k, v in sorted(pk.items())}
            r["layers_1x1"] = _one_by_one(packed, batch, size, repeats)
        if memory:
            log(f"[batch {batch}] peak memory (fresh processes) ...")
            r["memory_float"] = _peak_memory_mb(False, str(ckpt), model_name, batch, chans, size, threads)
            r["memory_packed"] = _peak_memory_mb(True, str(art), model_name, batch, chans, size, threads)
        r["packed_workspace_mb"] = packed.workspace.nbytes() / 2**20
        results[str(batch)] = r
    return results


def _time_each_isa(packed, x: torch.Tensor, repeats: int, budget_s: float,
                   log: Callable[[str], None]) -> dict[str, float]:
    """The packed engine's median ms with each instruction set this CPU supports (what a CPU
    without AVX-512, or without x86 SIMD, would run), the best one restored afterwards."""
    from .kernels import ISA_NAMES

    k = packed.kernels
    if not hasattr(k, "set_isa"):
        return {}
    best, times = k.isa(), {}
    try:
        for isa in sorted(ISA_NAMES, reverse=True):
            if k.supported(isa):
                log(f"[batch {x.shape[0]}] packed engine, {ISA_NAMES[isa]} kernels ...")
                k.set_isa(isa)
                times[ISA_NAMES[isa]] = _median_ms(partial(packed, x), repeats, budget_s)
    finally:
        k.set_isa(best)
    return times


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def _layer_groups(layers: dict[str, dict[str, Any]]) -> dict[tuple[str, str], list[float]]:
    """Sum per (stage, layer kind) over blocks: [float ms, packed ms]."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for name, t in layers.items():
        parts = name.split(".")
        if parts[0] != "network" or len(parts) < 4:
            stage, kind = (parts[0], name) if parts[0] != "network" else (f"s{int(parts[1]) // 2}", "downsample")
        else:
            stage, kind = f"s{int(parts[1]) // 2}", ".".join(parts[3:])
        g = groups[(stage, kind)]
        g[0] += t["float_ms"] or 0.0
        g[1] += t["packed_ms"]
    return groups


def print_report(results: dict[str, Any], out=sys.stdout) -> None:
    first = next(iter(results.values()))
    p = lambda s="": print(s, file=out)  # noqa: E731
    p(f"model {first['model']} @ {first['image_size']}px, {first['threads']} threads, "
      f"kernels {first['kernels']}, CPU {first['cpu']}, torch {first['torch']}")
    p(f"artifact {first['artifact_bytes'] / 1e6:.2f} MB vs float32 checkpoint "
      f"{first['float_checkpoint_bytes'] / 1e6:.2f} MB: {first['size_ratio']:.1f}x smaller")
    p()
    p(f"{'batch':>5} {'float eager ms':>15} {'compile ms':>11} {'packed ms':>10} {'speedup':>8} "
      f"{'vs compile':>10} {'peak MB f/p':>13} {'min cos':>9}")
    for b, r in results.items():
        comp = f"{r['compile_ms']:.1f}" if "compile_ms" in r else "-"
        vs = f"{r['speedup_vs_compile']:.2f}x" if "speedup_vs_compile" in r else "-"
        mf, mp = r.get("memory_float"), r.get("memory_packed")
        mem = f"{mf['peak_rss_mb']:.0f}/{mp['peak_rss_mb']:.0f}" if mf and mp else "-"
        p(f"{b:>5} {r['float_ms']:>15.1f} {comp:>11} {r['packed_ms']:>10.1f} {r['speedup']:>7.2f}x "
          f"{vs:>10} {mem:>13} {r['min_cosine_vs_float']:>9.6f}")
    for b, r in results.items():
        if r.get("packed_ms_by_isa"):
            parts = [f"{name} {ms:.1f} ms ({r['float_ms'] / ms:.2f}x)" for name, ms in r["packed_ms_by_isa"].items()]
            p(f"batch {b}, packed engine per instruction set (vs float32 eager): " + ", ".join(parts))
    for b, r in results.items():
        if "layers_1x1" not in r:
            continue
        p()
        p(f"batch {b}: isolated binary 1x1 layers (float: sign + conv2d; float unit: + BN, shortcut, "
          f"RPReLU; packed: pack + XNOR GEMM + fused BN/shortcut/RPReLU epilogue)")
        p(f"{'stage':>5} {'layer':>10} {'M':>7} {'K':>5} {'N':>5} {'float ms':>9} {'packed ms':>10} "
          f"{'speedup':>8} {'unit ms':>8} {'vs unit':>8} {'float GMAC/s':>13} {'binary GMAC/s':>14}")
        for row in r["layers_1x1"]:
            p(f"{row['stage']:>5} {row['layer']:>10} {row['M']:>7} {row['K']:>5} {row['N']:>5} "
              f"{row['float_ms']:>9.3f} {row['packed_ms']:>10.3f} {row['speedup']:>7.2f}x "
              f"{row['float_unit_ms']:>8.3f} {row['speedup_unit']:>7.2f}x "
              f"{row['float_gmacs']:>13.1f} {row['binary_gmacs']:>14.1f}")
        p()
        p(f"batch {b}: in-model per-layer ms, summed over the blocks of each stage (float: sign + "
          f"conv; packed: kernel + fused epilogue; ':pack'/':prep'/':mix' are the packing passes)")
        groups = _layer_groups(r["layers"])
        p(f"{'stage':>6} {'layer':>28} {'float ms':>9} {'packed ms':>10}")
        for (stage, kind), (f_ms, p_ms) in sorted(groups.items()):
            p(f"{stage:>6} {kind:>28} {f_ms:>9.2f} {p_ms:>10.2f}")
        tot = sum(v["packed_ms"] for v in r["layers"].values())
        p(f"{'':>6} {'sum of recorded packed parts':>28} {'':>9} {tot:>10.2f}")


def write_json(results: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True))
    return path
