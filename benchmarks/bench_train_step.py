"""Training-step time: BiMLP-S (paper mode, step 2) against Wave-MLP-T, eager and torch.compile.

One step = forward, cross-entropy, backward and an Adam update, at the same input size and
batch for both models, in one process. Steps of the two models are interleaved (A, B, A, B, ...)
so that a machine whose load changes during the run slows both alike; the median is reported.
The binary model simulates its 1-bit layers with float convolutions plus quantizers and adds
shortcut branches, so its step costs more than the float network's; the target is at most
1.5x with torch.compile, which fuses the elementwise quantizer and shortcut work.

    python benchmarks/bench_train_step.py                            # CPU defaults: batch 8, 64 px
    python benchmarks/bench_train_step.py --device cuda --batch-size 64 --input-size 224 --amp bf16
    python benchmarks/bench_train_step.py --no-compile --json out/bench.json

Prints a table and writes JSON (default ``bench_train_step.json`` in the working directory).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

MODELS = {
    "bimlp_s (paper, step 2)": ("bimlp_s", {"mode": "paper", "binary_weights": True}),
    "wavemlp_t (fp32)": ("wavemlp_t", {}),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--input-size", type=int, default=64)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--steps", type=int, default=6, help="timed steps per model and mode")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps after compiling")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    p.add_argument("--no-compile", action="store_true", help="eager only")
    p.add_argument("--json", default="bench_train_step.json", help="where to write the results")
    return p.parse_args(argv)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(name: str, kwargs: dict[str, Any], args: argparse.Namespace,
              device: torch.device, compiled: bool) -> tuple[Callable[[], None], int]:
    """A closure running one training step of a fresh model, and its parameter count."""
    import bimlp

    torch.manual_seed(0)
    model = bimlp.create_model(name, num_classes=args.classes, **kwargs).to(device).train()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    forward = torch.compile(model) if compiled else model
    x = torch.randn(args.batch_size, 3, args.input_size, args.input_size, device=device)
    y = torch.randint(0, args.classes, (args.batch_size,), device=device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.cross_entropy(forward(x).float(), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    return step, params


def bench_mode(args: argparse.Namespace, device: torch.device, compiled: bool) -> list[dict]:
    steps, rows = {}, {}
    for label, (name, kwargs) in MODELS.items():
        step, params = make_step(name, kwargs, args, device, compiled)
        start = time.perf_counter()
        step()  # compiles here when compiled
        _sync(device)
        first = time.perf_counter() - start
        for _ in range(args.warmup):
            step()
        steps[label] = step
        rows[label] = {"model": label, "mode": "compile" if compiled else "eager",
                       "params": params, "first_step_s": first, "times": []}
    for _ in range(args.steps):  # interleaved
        for label, step in steps.items():
            _sync(device)
            t0 = time.perf_counter()
            step()
            _sync(device)
            rows[label]["times"].append(time.perf_counter() - t0)
    for row in rows.values():
        row["ms_per_step"] = 1000 * statistics.median(row["times"])
        row["img_per_s"] = args.batch_size / (row["ms_per_step"] / 1000)
    return list(rows.values())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    modes = [False] if args.no_compile else [False, True]
    rows = [row for compiled in modes for row in bench_mode(args, device, compiled)]

    binary, fp = list(MODELS)
    ratios = {}
    for mode in ("eager", "compile"):
        found = {r["model"]: r for r in rows if r["mode"] == mode}
        if found:
            ratios[mode] = found[binary]["ms_per_step"] / found[fp]["ms_per_step"]

    cpu = platform.processor() or platform.machine()
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{cpu}, {torch.get_num_threads()} threads")
    print(f"training step, batch {args.batch_size} x 3 x {args.input_size} x {args.input_size}, "
          f"amp {args.amp}, {device} ({where}), median of {args.steps}")
    print(f"{'model':<26} {'mode':<8} {'params (M)':>10} {'ms/step':>9} {'img/s':>8} "
          f"{'1st step s':>10}")
    for r in rows:
        print(f"{r['model']:<26} {r['mode']:<8} {r['params'] / 1e6:>10.2f} "
              f"{r['ms_per_step']:>9.1f} {r['img_per_s']:>8.1f} {r['first_step_s']:>10.1f}")
    for mode, ratio in ratios.items():
        note = "  (target <= 1.5)" if mode == "compile" else ""
        print(f"ratio binary / fp, {mode}: {ratio:.2f}x{note}")
    result = {
        "benchmark": "train_step", "batch_size": args.batch_size, "input_size": args.input_size,
        "classes": args.classes, "amp": args.amp, "device": str(device), "device_name": where,
        "torch": torch.__version__, "steps": args.steps, "rows": rows, "ratio": ratios,
        "target_ratio_compile": 1.5,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
