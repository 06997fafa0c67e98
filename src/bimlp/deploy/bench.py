"""Benchmark: the 1-bit runtime against what a user would deploy instead, in one process.

Engines (same inputs, same thread count, interleaved rounds so that a noisy machine slows all of
them alike; medians reported):

* ``runtime`` -- the standalone runtime (``bimlp_runtime``) on the exported artifact;
* the same network in float32 (:func:`bimlp.deploy.simulate`: binarized weights, activations
  signed in the graph): ``torch eager``, ``torch.compile``, ``onnxruntime`` and ``openvino``
  (the last two when installed: ``pip install -e ".[bench]"``);
* float ResNet-18 and MobileNetV3-Large (torchvision, random weights) in ONNX Runtime.

Also: the runtime's cosine against PyTorch, its time per step (where the time goes), file sizes,
and peak memory of the runtime and the float engines, each in a fresh process.

:func:`benchmark_models` answers another question, at what latency and OPs each binary model runs:
several models (BiMLP-S, BiMLP-M in ``official`` numerics, ReActNet-A), each on the runtime,
beside float ResNet-18 in ONNX Runtime, interleaved the same way, with ``bimlp.profile``'s counts.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

__all__ = ["DEFAULT_MODELS", "benchmark", "benchmark_models", "print_models_report", "print_report", "write_json"]

RUNTIME = "runtime"
RESNET18 = "resnet18 onnxruntime"
# What a user can run today: the paper network, the released BiMLP-M (ternary; beside it in paper
# numerics, which isolates what the ternary path costs), a binary CNN.
DEFAULT_MODELS = ("bimlp_s", "bimlp_m:paper", "bimlp_m:official", "reactnet_a")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def _load_average() -> list[float]:
    """1, 5 and 15 minute load averages: a shared machine's timings mean little without them."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


# Idle time before each engine's turn in a round. Engines in one process leave threads busy after
# they return (ONNX Runtime's pool spins for a while after a run); without a pause the next engine
# shares the cores with them and is timed as if the machine were loaded (measured: the runtime's
# 2-thread batch-1 call took 22-25 ms right after ONNX Runtime against 9.9 ms after 100 ms of idle).
SETTLE_S = 0.1
# Calls per engine per round: the first after the idle above, the rest back to back. Two latencies
# come out: "after idle" (a request that finds the process idle: caches, the TLB and sleeping
# threads are cold; on the 2-vCPU VM this cost BiMLP-S at batch 1 1.6 ms on 2 threads and 4 ms
# on 1, ResNet-18 in ONNX Runtime 2.8 ms on either) and "steady" (a loop of requests, what
# inference benchmarks usually quote). Both are reported.
BURST = 4


def _interleaved(engines: dict[str, Callable[[], Any]], rounds: int, budget_s: float,
                 settle_s: float = SETTLE_S, burst: int = BURST) -> tuple[dict[str, float], dict[str, float]]:
    """Median ms per engine over ``rounds`` rounds, as ``(steady, after_idle)``. Every round gives
    each engine in turn ``settle_s`` seconds of idle and then ``burst`` calls back to back (after
    one warm-up call each before the first round): the first call of a turn is timed as "after
    idle", the others as "steady" (with ``burst=1``, steady is the after-idle time). An engine
    past half of ``budget_s`` makes one call per turn, past ``budget_s`` none after its third turn."""
    for fn in engines.values():
        fn()
    idle: dict[str, list[float]] = {k: [] for k in engines}
    steady: dict[str, list[float]] = {k: [] for k in engines}
    for _ in range(rounds):
        for name, fn in engines.items():
            spent = sum(idle[name]) + sum(steady[name])
            if len(idle[name]) >= 3 and spent > budget_s:
                continue
            time.sleep(settle_s)
            calls = burst if spent < budget_s / 2 else 1  # a slow engine: fewer calls
            for i in range(calls):
                t0 = time.perf_counter()
                fn()
                (steady[name] if i else idle[name]).append(time.perf_counter() - t0)
    med = lambda v: 1e3 * statistics.median(v)
    return ({k: med(steady[k] or idle[k]) for k in engines}, {k: med(v) for k, v in idle.items()})


def _onnx_file(model: torch.nn.Module, path: Path, chans: int, size: int) -> Path:
    x = torch.randn(2, chans, size, size)  # batch 2: 1 would be specialised away
    # the current (dynamo) exporter, as bimlp export --onnx; weights inside the one file, so that
    # the file sizes reported are the models' sizes
    with torch.no_grad():
        torch.onnx.export(model, (x,), str(path), input_names=["image"], output_names=["logits"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True,
                          external_data=False, verbose=False)
    return path


def _ort_session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda x: sess.run(None, {"image": x})[0]


def _openvino(path: Path, threads: int):
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                     "PERFORMANCE_HINT": "LATENCY"})
    req = compiled.create_infer_request()
    return lambda x: req.infer({0: x})


def _step_groups(steps: dict[str, float]) -> dict[str, float]:
    """ms per kind of step summed over blocks (BiMLP: stem, norm1, attn.front, ..., downsample, head;
    ReActNet, whose steps are ``blocks.{i}.{kind}``: stem, binary_3x3, binary_pw, head)."""
    out: dict[str, float] = {}
    for name, s in steps.items():
        parts = name.split(".")
        key = "downsample" if name.endswith(".proj") and len(parts) == 3 else (
            ".".join(parts[3:]) if name.startswith("network.") else
            ".".join(parts[2:]) if name.startswith("blocks.") else name)
        out[key] = out.get(key, 0.0) + 1e3 * s
    return out


def _step_stages(steps: dict[str, float], depths: list[int]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, s in steps.items():
        parts = name.split(".")
        key = f"stage {int(parts[1]) // 2}" if name.startswith("network.") and len(parts) > 3 else (
            "downsample" if name.startswith("network.") else name)
        out[key] = out.get(key, 0.0) + 1e3 * s
    return out


_CHILD = r"""
import sys, numpy as np
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
kind, path, batch, chans, size, threads = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
x = np.random.default_rng(0).standard_normal((batch, chans, size, size)).astype(np.float32)
if kind == "runtime":
    import bimlp_runtime
    m = bimlp_runtime.load(path, threads=threads)
    run = m.run
elif kind == "onnxruntime":
    import onnxruntime as ort
    o = ort.SessionOptions(); o.intra_op_num_threads = threads; o.inter_op_num_threads = 1
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    run = lambda a: s.run(None, {"image": a})
else:
    import torch
    torch.set_num_threads(threads)
    from bimlp.deploy import simulate
    import bimlp
    m = simulate(bimlp.create_model(kind.split(":", 1)[1], checkpoint=path).eval())
    def run(a):
        with torch.inference_mode():
            return m(torch.from_numpy(a))
loaded = hwm()
run(x); run(x)
print(loaded, hwm(), "torch" in sys.modules)
"""


def _peak_memory(kind: str, path: Path, batch: int, chans: int, size: int, threads: int) -> dict[str, Any] | None:
    try:
        res = subprocess.run([sys.executable, "-c", _CHILD, kind, str(path), str(batch), str(chans), str(size),
                              str(threads)], capture_output=True, text=True, timeout=1800, check=True)
        loaded, peak, torch_loaded = res.stdout.split()[-3:]
    except (subprocess.SubprocessError, ValueError):
        return None
    return {"peak_rss_mb": float(peak), "after_load_mb": float(loaded), "torch_imported": torch_loaded == "True"}


def benchmark(model_name: str = "bimlp_s", checkpoint: str | None = None, batches: tuple[int, ...] = (1, 32),
              size: int = 224, threads: tuple[int, ...] = (1, 2), rounds: int = 7, budget_s: float = 60.0,
              use_compile: bool = True, memory: bool = True, layers: bool = True, all_isas: bool = False,
              references: bool = True, log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    import bimlp_runtime

    from ..checkpoint import save_weights
    from ..models import create_model
    from .artifact import export
    from .simulate import simulate

    model = create_model(model_name, checkpoint=checkpoint).eval()
    chans = model.config.in_chans
    tmp = Path(tempfile.mkdtemp(prefix="bimlp-bench-"))
    art = export(model, tmp / f"{model_name}.bimlp")
    ckpt = save_weights(model, tmp / f"{model_name}.safetensors")
    sim = simulate(model)
    files = {"artifact_bytes": art.stat().st_size, "float_checkpoint_bytes": ckpt.stat().st_size}
    onnx_ok = _importable("onnxruntime") and _importable("onnx")
    ov_ok = onnx_ok and _importable("openvino")
    onnx_files: dict[str, Path] = {}
    if onnx_ok:
        log("exporting ONNX graphs")
        onnx_files["float"] = _onnx_file(sim, tmp / "float.onnx", chans, size)
        if references:
            import torchvision

            onnx_files["resnet18"] = _onnx_file(torchvision.models.resnet18().eval(), tmp / "r18.onnx", 3, size)
            onnx_files["mobilenetv3_large"] = _onnx_file(torchvision.models.mobilenet_v3_large().eval(),
                                                         tmp / "mbv3.onnx", 3, size)
        files.update({f"onnx_{k}_bytes": p.stat().st_size for k, p in onnx_files.items()})
    compiled = torch.compile(sim) if use_compile else None
    results: dict[str, Any] = {
        "machine": _cpu_name(), "cpus": os.cpu_count(), "model": model_name, "size": size, "rounds": rounds,
        "settle_s": SETTLE_S, "burst": BURST,
        "files": files, "runs": {}, "notes": [],
    }
    if not onnx_ok:
        results["notes"].append("onnxruntime/onnx not installed: ONNX baselines skipped (pip install .[bench])")
    elif not ov_ok:
        results["notes"].append("openvino not installed: OpenVINO baseline skipped")
    runtimes: dict[int, Any] = {}  # one loaded runtime per thread count, reused for the scaling round
    for t in threads:
        torch.set_num_threads(t)
        rt = runtimes[t] = bimlp_runtime.load(art, threads=t)
        results["isa"] = rt.isa
        sessions: dict[str, Callable] = {}
        for key, p in onnx_files.items():
            sessions["onnxruntime" if key == "float" else f"{key} onnxruntime"] = _ort_session(p, t)
        if ov_ok:
            sessions["openvino"] = _openvino(onnx_files["float"], t)
        for b in batches:
            log(f"batch {b}, {t} threads")
            x = np.random.default_rng(b).standard_normal((b, chans, size, size)).astype(np.float32)
            xt = torch.from_numpy(x)
            xr = np.random.default_rng(b).standard_normal((b, 3, size, size)).astype(np.float32)

            def eager(m=sim, xt=xt):
                with torch.inference_mode():
                    return m(xt)

            engines: dict[str, Callable[[], Any]] = {RUNTIME: lambda rt=rt, x=x: rt.run(x), "torch eager": eager}
            if compiled is not None:
                engines["torch.compile"] = lambda: eager(compiled)
            for name, fn in sessions.items():
                engines[name] = (lambda fn=fn, xr=xr: fn(xr)) if name.endswith(" onnxruntime") else (lambda fn=fn, x=x: fn(x))
            if all_isas:
                from bimlp_runtime.testing import supported_isas

                for isa in supported_isas():
                    os.environ["BIMLP_ISA"] = isa
                    try:
                        m_isa = bimlp_runtime.load(art, threads=t)
                    finally:
                        del os.environ["BIMLP_ISA"]
                    engines[f"runtime {isa}"] = lambda m_isa=m_isa, x=x: m_isa.run(x)
            ms, idle_ms = _interleaved(engines, rounds, budget_s)
            out = rt.run(x)
            with torch.inference_mode():
                ref = sim(xt).numpy()
            cos = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
            run: dict[str, Any] = {
                "batch": b, "threads": t, "ms": ms, "ms_after_idle": idle_ms,
                "speedup_vs": {k: v / ms[RUNTIME] for k, v in ms.items() if k != RUNTIME},
                "speedup_vs_after_idle": {k: v / idle_ms[RUNTIME] for k, v in idle_ms.items() if k != RUNTIME},
                "images_per_s": {k: 1e3 * b / v for k, v in ms.items()},
                "min_cosine_vs_float": float(cos.min()),
            }
            if layers:
                _, steps = rt.profile(x, repeats=3)
                steps = {k: v / 3 for k, v in steps.items()}
                run["runtime_steps_ms"] = _step_groups(steps)
                run["runtime_stages_ms"] = _step_stages(steps, list(model.config.depths))
            results["runs"][f"b{b}_t{t}"] = run
    if len(threads) > 1:
        results.update(_thread_scaling(runtimes, chans, size, batches, rounds, budget_s, log))
    if memory:
        b, t = max(batches), max(threads)
        log(f"peak memory, batch {b}, {t} threads (fresh processes)")
        mem = {RUNTIME: _peak_memory("runtime", art, b, chans, size, t),
               "torch eager": _peak_memory(f"torch:{model_name}", ckpt, b, chans, size, t)}
        if "float" in onnx_files:
            mem["onnxruntime"] = _peak_memory("onnxruntime", onnx_files["float"], b, chans, size, t)
        results["peak_memory"] = {"batch": b, "threads": t, **mem}
    return results


def _thread_scaling(models: dict[int, Any], chans: int, size: int, batches: tuple[int, ...], rounds: int,
                    budget_s: float, log: Callable[[str], None]) -> dict[str, Any]:
    """The runtime's speed-up from the first thread count of ``models`` (the runtime loaded once per
    thread count) to each other, per batch: the loads called alternately in the same rounds, so that
    the ratio is not a drift of the machine between the phases of the benchmark (minutes apart)."""
    threads = list(models)
    out: dict[str, Any] = {"thread_scaling": {}, "thread_scaling_after_idle": {}, "thread_scaling_ms": {}}
    for b in batches:
        log(f"thread scaling, batch {b}: threads {', '.join(map(str, threads))} interleaved")
        x = np.random.default_rng(b).standard_normal((b, chans, size, size)).astype(np.float32)
        engines = {str(t): (lambda m=m, x=x: m.run(x)) for t, m in models.items()}
        ms, idle_ms = _interleaved(engines, rounds, budget_s)
        t0 = str(threads[0])
        out["thread_scaling"][f"b{b}"] = {f"{t}/{t0}": ms[t0] / ms[str(t)] for t in threads[1:]}
        out["thread_scaling_after_idle"][f"b{b}"] = {f"{t}/{t0}": idle_ms[t0] / idle_ms[str(t)] for t in threads[1:]}
        out["thread_scaling_ms"][f"b{b}"] = {"ms": ms, "ms_after_idle": idle_ms}
    return out


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def print_report(results: dict[str, Any], out: TextIO | None = None) -> None:
    """The table of :func:`benchmark`; ``out`` defaults to the ``sys.stdout`` of the call (not of
    the import, which pytest's capture or a redirect may have replaced since)."""
    p = lambda s="": print(s, file=out or sys.stdout)
    p(f"{results['model']} at {results['size']}x{results['size']} on {results['machine']} ({results['cpus']} CPUs), "
      f"runtime isa {results.get('isa')}, {results['rounds']} interleaved rounds, medians")
    names: list[str] = []
    for r in results["runs"].values():
        names += [k for k in r["ms"] if k not in names]
    tables = [("ms", "speedup_vs", "thread_scaling", f"steady: calls 2-{results.get('burst', 1)} of each turn, back to back")]
    if all("ms_after_idle" in r for r in results["runs"].values()):
        tables.append(("ms_after_idle", "speedup_vs_after_idle", "thread_scaling_after_idle",
                       f"after idle: the first call of each turn, after {results['settle_s'] * 1e3:.0f} ms of idle"))
    for ms_key, x_key, scaling_key, title in tables:
        p(f"{title}")
        p("| batch | threads | " + " | ".join(names) + " | min cos |")
        p("|---|---|" + "---|" * len(names) + "---|")
        for r in results["runs"].values():
            cells = [f"{r[ms_key][k]:.1f} ms" + ("" if k == RUNTIME else f" ({r[x_key][k]:.2f}x)")
                     if k in r[ms_key] else "-" for k in names]
            p(f"| {r['batch']} | {r['threads']} | " + " | ".join(cells) + f" | {r['min_cosine_vs_float']:.6f} |")
        for b, s in results.get(scaling_key, {}).items():
            p(f"runtime thread scaling {b} (thread counts interleaved): "
              + ", ".join(f"{k} threads {v:.2f}x" for k, v in s.items()))
    p("(x: that engine's time / the runtime's time, same batch and threads)")
    f = results["files"]
    p("files: " + ", ".join(f"{k.removesuffix('_bytes')} {v / 1e6:.2f} MB" for k, v in f.items()))
    for note in results["notes"]:
        p(f"note: {note}")
    if "peak_memory" in results:
        pm = results["peak_memory"]
        p(f"peak RSS at batch {pm['batch']}, {pm['threads']} threads: " + ", ".join(
            f"{k} {v['peak_rss_mb']:.0f} MB" + (" (no torch)" if not v["torch_imported"] else "")
            for k, v in pm.items() if isinstance(v, dict)))
    for key, r in results["runs"].items():
        if "runtime_steps_ms" in r:
            steps = sorted(r["runtime_steps_ms"].items(), key=lambda kv: -kv[1])
            p(f"runtime {key} where the time goes (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in steps if v >= 0.005))


def _model_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``name`` or ``name:mode`` (e.g. ``bimlp_m:official``) -> (registered name, its keywords)."""
    name, _, mode = spec.partition(":")
    return name, ({"mode": mode} if mode else {})


def _random_model(spec: str, num_classes: int | None, seed: int = 0) -> tuple[torch.nn.Module, int]:
    """(the model ``spec`` names with its seeded random init, in eval mode, every binary weight
    nonzero; how many were zero). PyTorch's uniform init draws an exact 0 now and then (a random BiMLP-M holds one or two
    among its 28 M binary weights); official mode's sign(0) = 0 has no 1-bit code, so export would
    refuse the model. Such zeros become the smallest positive float32: sign +1, scales unchanged,
    and the runtime's speed does not depend on weight values."""
    from ..layers import BinaryConv2d
    from ..models import create_model

    name, kwargs = _model_spec(spec)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = create_model(name, **kwargs).eval()
    zeros = 0
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, BinaryConv2d):
                zero = m.weight == 0
                zeros += int(zero.sum())
                m.weight[zero] = torch.finfo(m.weight.dtype).tiny
    return model, zeros


def _complexity(model: torch.nn.Module, input_size: tuple[int, int, int], numerics: str | None,
                file: Path, engine: str) -> dict[str, Any]:
    """What a row of the table says besides time: ``bimlp.profile``'s counts (its convention: a BOP
    needs both operands 1-bit, so ternary activations against binary weights are FLOPs) and the
    size of the file the engine runs."""
    from ..profile import profile

    p = profile(model, input_size)
    return {"engine": engine, "numerics": numerics, "params": p.params, "binary_params": p.binary_params,
            "bops": p.bops, "flops": p.flops, "ops": p.ops, "file_bytes": file.stat().st_size}


def benchmark_models(models: tuple[str, ...] = DEFAULT_MODELS, batches: tuple[int, ...] = (1, 32),
                     size: int = 224, threads: tuple[int, ...] = (1, 2), rounds: int = 5,
                     batched_rounds: int = 3, budget_s: float = 60.0, num_classes: int | None = None,
                     reference: bool = True, log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Several binary models on the runtime (random weights), timed together with float ResNet-18 in
    ONNX Runtime: per batch and thread count, every engine runs once a round, ``rounds`` rounds at
    batch 1 and ``batched_rounds`` at larger batches (they take longer and vary less); medians.

    ``models`` are registered names, optionally with numerics (``bimlp_m:official``), built with a
    seeded random init (:func:`_random_model`). The artifacts live in a temporary folder removed at
    the end. Results are keyed ``b{batch}_t{threads}``.
    """
    import bimlp_runtime

    from .artifact import export

    results: dict[str, Any] = {
        "machine": _cpu_name(), "cpus": os.cpu_count(), "size": size, "rounds": rounds,
        "batched_rounds": batched_rounds, "settle_s": SETTLE_S, "burst": BURST, "models": {}, "runs": {}, "notes": [],
        "load_average": {"start": _load_average()},
    }
    chans: dict[str, int] = {}
    files: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="bimlp-bench-models-") as tmp_dir:
        tmp = Path(tmp_dir)
        for spec in models:
            log(f"exporting {spec}")
            model, zeros = _random_model(spec, num_classes)
            chans[spec], numerics = model.config.in_chans, getattr(model.config, "mode", None)
            files[spec] = export(model, tmp / f"model{len(files)}.bimlp")
            results["models"][spec] = _complexity(model, (chans[spec], size, size), numerics, files[spec], RUNTIME)
            results["models"][spec]["zero_weights_made_positive"] = zeros
            if zeros:
                why = ("official mode's sign(0) = 0 has no 1-bit code" if numerics == "official"
                       else "the same weight: sign(0) = +1 in paper mode")
                results["notes"].append(f"{spec}: {zeros} exact-zero binary weight(s) of the random init set to the "
                                        f"smallest positive float ({why})")
        if reference and _importable("onnxruntime") and _importable("onnx"):
            import torchvision

            log("exporting ResNet-18 to ONNX")
            r18 = torchvision.models.resnet18(**({"num_classes": num_classes} if num_classes else {})).eval()
            chans[RESNET18], files[RESNET18] = 3, _onnx_file(r18, tmp / "r18.onnx", 3, size)
            results["models"][RESNET18] = _complexity(r18, (3, size, size), "float", files[RESNET18], "onnxruntime")
        elif reference:
            results["notes"].append("onnxruntime/onnx not installed: ResNet-18 reference skipped (pip install .[bench])")
        for t in threads:
            runtimes = {spec: bimlp_runtime.load(path, threads=t) for spec, path in files.items() if spec != RESNET18}
            runners: dict[str, Callable] = {spec: rt.run for spec, rt in runtimes.items()}
            if RESNET18 in files:
                runners[RESNET18] = _ort_session(files[RESNET18], t)
            results["isa"] = next(iter(runtimes.values())).isa
            for b in batches:
                log(f"batch {b}, {t} threads")
                inputs = {spec: np.random.default_rng(b).standard_normal((b, chans[spec], size, size))
                          .astype(np.float32) for spec in runners}
                engines = {spec: (lambda fn=fn, x=inputs[spec]: fn(x)) for spec, fn in runners.items()}
                ms, idle_ms = _interleaved(engines, rounds if b == 1 else batched_rounds, budget_s)
                run: dict[str, Any] = {"batch": b, "threads": t, "ms": ms, "ms_after_idle": idle_ms,
                                       "images_per_s": {k: 1e3 * b / v for k, v in ms.items()},
                                       "load_average": _load_average()}
                if RESNET18 in ms:
                    run["speedup_vs_resnet18"] = {k: ms[RESNET18] / v for k, v in ms.items() if k != RESNET18}
                results["runs"][f"b{b}_t{t}"] = run
                if (b, t) == (batches[0], threads[0]):  # where the time goes, once per model
                    for spec, rt in runtimes.items():
                        _, steps = rt.profile(inputs[spec], repeats=3)
                        results["models"][spec][f"runtime_steps_ms_b{b}_t{t}"] = _step_groups(
                            {k: v / 3 for k, v in steps.items()})
    results["load_average"]["end"] = _load_average()
    results["notes"].append("OPs = FLOPs + BOPs / 64 (bimlp.profile); a BOP needs both operands 1-bit, so the "
                            "ternary activations of official mode against binary weights count as FLOPs")
    return results


def _first(values: list[float]) -> str:
    return f"{values[0]:.2f}" if values else "?"


def print_models_report(results: dict[str, Any], out: TextIO | None = None) -> None:
    """The tables of :func:`benchmark_models` (Markdown): counts and ms per model, then images/s."""
    p = lambda s="": print(s, file=out or sys.stdout)
    la = results["load_average"]
    p(f"binary models on the runtime at {results['size']}x{results['size']}, random weights, on {results['machine']} "
      f"({results['cpus']} CPUs), runtime isa {results.get('isa')}; medians of {results['rounds']} interleaved rounds "
      f"at batch 1, {results['batched_rounds']} at larger batches; load average {_first(la['start'])} -> {_first(la['end'])}")
    keys = list(results["runs"])
    cols = [f"b{r['batch']} t{r['threads']}" for r in results["runs"].values()]
    p("| model | engine | numerics | params | BOPs | FLOPs | OPs | file | " + " | ".join(cols) + " |")
    p("|---|---|---|---|---|---|---|---|" + "---|" * len(cols))
    for spec, m in results["models"].items():
        cells = [f"{results['runs'][k]['ms'][spec]:.1f} ms" for k in keys]
        p(f"| {spec} | {m['engine']} | {m['numerics'] or '-'} | {m['params'] / 1e6:.2f} M | {m['bops'] / 1e9:.2f} G | "
          f"{m['flops'] / 1e9:.3f} G | {m['ops'] / 1e9:.3f} G | {m['file_bytes'] / 1e6:.1f} MB | " + " | ".join(cells) + " |")
    p("images/s (x: ResNet-18 ORT's time / this model's, same batch and threads):")
    p("| model | " + " | ".join(cols) + " |")
    p("|---|" + "---|" * len(cols))
    for spec in results["models"]:
        cells = []
        for k in keys:
            r = results["runs"][k]
            x = r.get("speedup_vs_resnet18", {}).get(spec)
            cells.append(f"{r['images_per_s'][spec]:.1f}" + (f" ({x:.2f}x)" if x is not None else ""))
        p(f"| {spec} | " + " | ".join(cells) + " |")
    p("load average (1 min) after each configuration: " + ", ".join(
        f"{c} {_first(r['load_average'])}" for c, r in zip(cols, results["runs"].values(), strict=True)))
    for spec, m in results["models"].items():
        for key, steps in m.items():
            if key.startswith("runtime_steps_ms_"):
                top = sorted(steps.items(), key=lambda kv: -kv[1])[:6]
                p(f"{spec} {key.removeprefix('runtime_steps_ms_')} where the time goes (ms): "
                  + ", ".join(f"{k} {v:.1f}" for k, v in top))
    for note in results["notes"]:
        p(f"note: {note}")


def write_json(results: dict[str, Any], path: str | Path) -> Path:
    from ..files import atomic_write_text

    return atomic_write_text(path, json.dumps(results, indent=2, sort_keys=True))
