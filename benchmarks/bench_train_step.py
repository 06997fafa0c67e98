"""Training-step throughput of the Fashion-MNIST study's networks: fast path against the
reference modules, eager and torch.compile, interleaved in one process.

One step is what the study runs for every batch: the student's forward, the distillation loss
against the frozen full-precision teacher (binary networks; the full-precision Wave-MLP learns
from labels), backward, and the Adam update. For each network of the study (``wavemlp_fp``,
``naive``, ``bimlp``, ``reactnet_a``: the models, sizes and stems of ``experiments/ablation.py``),
each path (``fast``: ``model.set_fast_path()`` plus the one-kernel Adam; ``reference``: the plain
modules and torch's default Adam) and each mode (``eager``; ``compile``: the student through
``torch.compile``, and the teacher as the trainer does it, compiled on a GPU and eager on the
CPU -- ``bimlp.train.engine.compile_teacher``), it builds a fresh model, runs one step (``warmup_s``: for ``compile``
this includes compiling, in a cache folder new to this process unless ``--cache-dir`` names
one), then times ``--rounds`` rounds in which every configuration takes one step in turn, so a
change of machine load slows them alike. It prints the median images/s of each and the
ratios the study cares about, and with ``--json`` writes::

    {"config": {...}, "results": {model: {path: {mode: {"img_s", "warmup_s", ...}}}}}

(``kernels_built``, for ``compile`` on the CPU: the C++ kernels inductor compiled during the
first step, about 1 s of one core each here, the bulk of a cold warm-up.)

    python benchmarks/bench_train_step.py                        # the study's set-up, 2 threads
    python benchmarks/bench_train_step.py --modes eager --json docs/bench_train_step.json
    python benchmarks/bench_train_step.py --models bimlp wavemlp_fp --device cuda

Compiled warm-ups are measured in the order printed (per model: fast, then reference); a later
compile may reuse kernels an earlier one built in the same process, so the first of each model
is the honest cold figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODELS = ("wavemlp_fp", "naive", "bimlp", "reactnet_a")
PATHS = ("fast", "reference")
MODES = ("eager", "compile")


def _study_module():
    """``experiments/ablation.py``, loaded by path: the study's variants and settings are
    defined once, there."""
    spec = importlib.util.spec_from_file_location("bimlp_study", REPO / "experiments" / "ablation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("-b", "--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--rounds", type=int, default=5, help="timed steps of every configuration")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--cache-dir", default=None,
                   help="torch.compile's cache folder (default: a new empty one, a cold start)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results here")
    args = p.parse_args(argv)
    if args.batch_size < 1 or args.rounds < 1 or args.threads < 1:
        p.error("--batch-size, --rounds and --threads must be positive")
    if args.json and Path(args.json).is_dir():
        p.error(f"--json {args.json} is a folder; give a file path")
    return args


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(study_mod, name: str, fast: bool, compiled: bool, args: argparse.Namespace,
              device) -> Callable[[], None]:
    """A closure running one training step of a freshly built ``name`` on a fixed batch."""
    import torch
    import torch.nn.functional as F

    import bimlp
    from bimlp.train.config import OptimConfig
    from bimlp.train.distill import distillation_loss
    from bimlp.train.engine import compile_teacher
    from bimlp.train.optim import build_optimizer

    study = study_mod.Study()
    variant = study_mod.VARIANTS[name]
    size, classes = study.image_size, 10  # Fashion-MNIST: 1 x 32 x 32 after resizing, 10 classes

    def build(v) -> torch.nn.Module:
        model = bimlp.create_model(v.model, num_classes=classes, in_chans=1,
                                   **v.model_kwargs(study)).to(device)
        return model.set_fast_path() if fast else model

    torch.manual_seed(0)
    model = build(variant).train()
    teacher = None
    if variant.binary:
        teacher = build(study_mod.VARIANTS[study_mod.TEACHER]).eval().requires_grad_(False)
    opt = build_optimizer(model, OptimConfig(lr=study.lr, weight_decay=1e-5), args.batch_size,
                          fused=fast)
    forward = torch.compile(model) if compiled else model
    teach = compile_teacher(teacher, device) if compiled and teacher is not None else teacher
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch_size, 1, size, size, generator=g).to(device)
    y = torch.randint(0, classes, (args.batch_size,), generator=g).to(device)

    def step() -> None:
        logits = forward(x)
        if teach is None:
            loss = F.cross_entropy(logits, y)
        else:
            with torch.no_grad():
                target = teach(x)
            loss = distillation_loss(logits, target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def _compiled_kernels() -> int:
    """Shared libraries in inductor's cache folder: one per C++ kernel it compiled (a kernel
    found in the cache is not built again, so a warm cache adds none)."""
    cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    return sum(1 for _ in Path(cache).rglob("*.so")) if cache and Path(cache).is_dir() else 0


def run(study_mod, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    # every model here runs the same forward code (StagedNet.forward): without a higher limit
    # dynamo stops compiling it after 8 graphs and silently runs the rest eagerly
    torch._dynamo.config.recompile_limit = 64
    device = torch.device(args.device)
    keys = [(m, p, mode) for mode in args.modes for m in args.models for p in args.paths]
    steps, results = {}, {}
    for key in keys:
        model, path, mode = key
        step = make_step(study_mod, model, path == "fast", mode == "compile", args, device)
        _sync(device)
        built = _compiled_kernels()
        start = time.perf_counter()
        step()  # compiles, for mode compile
        _sync(device)
        warmup = time.perf_counter() - start
        step()  # a second untimed step: recompilations, allocator growth
        steps[key] = step
        results[key] = {"warmup_s": warmup, "times_s": []}
        if mode == "compile" and device.type == "cpu":  # C++ kernels inductor built for it
            results[key]["kernels_built"] = _compiled_kernels() - built
        print(f"  built {model:<11} {path:<9} {mode:<8} first step {warmup:7.1f} s", flush=True)
    for _ in range(args.rounds):
        for key, step in steps.items():
            _sync(device)
            t0 = time.perf_counter()
            step()
            _sync(device)
            results[key]["times_s"].append(time.perf_counter() - t0)
    nested: dict[str, Any] = {}
    for (model, path, mode), r in results.items():
        median = statistics.median(r["times_s"])
        r.update(step_ms=1000 * median, img_s=args.batch_size / median)
        nested.setdefault(model, {}).setdefault(path, {})[mode] = r
    return nested


def ratios(results: dict[str, Any]) -> dict[str, float]:
    """The study's questions: fast over reference per model and mode, and every compiled fast
    model's step time over the compiled full-precision Wave-MLP's."""
    out = {}
    for model, paths in results.items():
        for mode in MODES:
            if mode in paths.get("fast", {}) and mode in paths.get("reference", {}):
                out[f"{model} {mode}: fast / reference speed"] = (
                    paths["fast"][mode]["img_s"] / paths["reference"][mode]["img_s"])
    base = results.get("wavemlp_fp", {}).get("fast", {}).get("compile")
    for model, paths in results.items():
        mine = paths.get("fast", {}).get("compile")
        if base and mine and model != "wavemlp_fp":
            out[f"{model} compile fast: step time / wavemlp_fp's"] = (
                mine["step_ms"] / base["step_ms"])
    return out


def machine(study_mod, args: argparse.Namespace) -> str:
    import torch

    if args.device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(args.device))
    info = study_mod._machine()
    return f"{info['cpu']}, {info['cores']} CPUs, {args.threads} threads"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cache = args.cache_dir or tempfile.mkdtemp(prefix="bimlp-inductor-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # read by the compiler when it first caches
    import torch

    study_mod = _study_module()
    results = run(study_mod, args)
    rat = ratios(results)
    where = machine(study_mod, args)
    print(f"\ntraining step of the study's networks, batch {args.batch_size} x 1 x 32 x 32, "
          f"{args.device} ({where}), torch {torch.__version__}, median of {args.rounds} "
          f"interleaved rounds")
    print(f"{'model':<11} {'path':<10} {'mode':<8} {'ms/step':>9} {'img/s':>8} {'warm-up s':>10} "
          f"{'kernels':>8}")
    for model, paths in results.items():
        for path, modes in paths.items():
            for mode, r in modes.items():
                print(f"{model:<11} {path:<10} {mode:<8} {r['step_ms']:>9.1f} {r['img_s']:>8.1f} "
                      f"{r['warmup_s']:>10.1f} {r.get('kernels_built', '-'):>8}")
    for label, value in rat.items():
        print(f"{label}: {value:.2f}x")
    if args.json:
        config = {k: v for k, v in vars(args).items() if k != "json"}
        config.update(machine=where, torch=torch.__version__, cache_dir=cache,
                      image_size=32, in_chans=1, classes=10, loadavg=os.getloadavg())
        out = {"config": config, "results": results, "ratios": rat}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
