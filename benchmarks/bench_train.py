"""Training throughput: BiMLP-S (paper mode, step 2) against Wave-MLP-T, images per second.

Binarization-aware training simulates 1-bit layers with float convolutions plus quantizers
(sign, scales, straight-through estimators) and BiMLP adds branches and shortcuts, so a training
step costs more than the full-precision network it is distilled from. This measures one
optimizer step (forward, loss, backward, Adam) at 224x224 under bf16 autocast for both models
in one process, so the ratio is measured on the same hardware at the same moment.

    python benchmarks/bench_train.py --device cuda                         # batch 64, 20 steps
    python benchmarks/bench_train.py --device cpu --batch-size 4 --steps 3 --warmup 1
    python benchmarks/bench_train.py --device cuda --teacher               # + a KD teacher row

``--teacher`` adds a third row, what the two-step recipe really runs for the student: a frozen
Wave-MLP-T forward pass per batch and the distillation loss. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    return platform.processor() or "cpu"


def bench_model(name: str, kwargs: dict[str, Any], args: argparse.Namespace,
                device: torch.device, teacher: torch.nn.Module | None) -> dict[str, Any]:
    """images/s of full training steps of one model."""
    import bimlp

    torch.manual_seed(0)
    model = bimlp.create_model(name, num_classes=1000, **kwargs).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    y = torch.randint(0, 1000, (args.batch_size,), device=device)
    amp = torch.bfloat16 if args.amp == "bf16" else None

    def step() -> None:
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits = model(x)
            if teacher is not None:
                with torch.no_grad():
                    target = F.softmax(teacher(x).float(), dim=-1)
                loss = -(target * F.log_softmax(logits.float(), dim=-1)).sum(-1).mean()
            else:
                loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        step()
    _sync(device)
    elapsed = time.perf_counter() - start
    # CPU seconds of this process: on a shared CPU, wall time also counts waiting for a core
    cpu = time.process_time() - cpu_start
    row = {
        "model": name, "kwargs": kwargs, "teacher": teacher is not None,
        "params": sum(p.numel() for p in model.parameters()),
        "batch_size": args.batch_size, "steps": args.steps, "seconds": elapsed,
        "ms_per_step": 1e3 * elapsed / args.steps,
        "img_s": args.batch_size * args.steps / elapsed,
        "process_cpu_s": cpu,
    }
    if device.type == "cuda":
        row["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return row


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu")
    p.add_argument("--batch-size", type=int, default=None, help="default: 64 (cuda), 4 (cpu)")
    p.add_argument("--steps", type=int, default=None, help="timed steps; default 20 / 3")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps; default 5 / 1")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--amp", default="bf16", choices=["bf16", "none"])
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch default)")
    p.add_argument("--teacher", action="store_true",
                   help="also time BiMLP-S steps with a frozen Wave-MLP-T teacher (distillation)")
    p.add_argument("--json", default="bench_train.json", help="where to write the results")
    args = p.parse_args(argv)
    cpu = args.device == "cpu"
    args.batch_size = args.batch_size or (4 if cpu else 64)
    args.steps = args.steps or (3 if cpu else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if cpu else 5)
    return args


def main(argv: list[str] | None = None) -> int:
    import bimlp

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here; use --device cpu", file=sys.stderr)
        return 2
    teacher = None
    if args.teacher:
        teacher = bimlp.create_model("wavemlp_t", num_classes=1000).to(device).eval()
        teacher.requires_grad_(False)
    step2 = {"mode": "paper", "binary_weights": True}
    rows = [
        bench_model("wavemlp_t", {}, args, device, None),
        bench_model("bimlp_s", step2, args, device, None),
    ]
    if teacher is not None:
        rows.append(bench_model("bimlp_s", step2, args, device, teacher))
    base = rows[0]["img_s"]
    header = (f"{'model':<34}{'params':>10}{'batch':>7}{'ms/step':>10}{'img/s':>9}{'vs fp':>7}"
              f"{'cpu s/step':>12}")
    print(f"training throughput at {args.image_size}px, amp {args.amp}, on "
          f"{_device_name(device)}, torch {torch.__version__}")
    print(header)
    for r in rows:
        label = r["model"] + (" (step 2)" if r["model"] == "bimlp_s" else "")
        label += " + teacher" if r["teacher"] else ""
        print(f"{label:<34}{r['params'] / 1e6:>9.2f}M{r['batch_size']:>7}"
              f"{r['ms_per_step']:>10.1f}{r['img_s']:>9.2f}{r['img_s'] / base:>6.2f}x"
              f"{r['process_cpu_s'] / r['steps']:>12.2f}")
    out = {"device": str(device), "device_name": _device_name(device),
           "torch": torch.__version__, "image_size": args.image_size, "amp": args.amp,
           "threads": torch.get_num_threads(), "rows": rows}
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
