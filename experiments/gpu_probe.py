"""Where a study run's time goes on a GPU: the training step alone (synthetic batch, eager and
compiled) per model, and the data loader alone (workers 0 / 1 / 4), at the study's configuration.

    python experiments/gpu_probe.py --json OUT.json --budget-s 150

Written after the first GPU attempt at the study: the full-precision teacher trained at only
about 2,000 images/s there (30 s an epoch), so this separates the step from the loading.
Each part is skipped once the time budget would be exceeded; the JSON is rewritten after each.
The step is the reference path's, built by ``benchmarks/bench_train_step.py`` (which also times
the fast path, interleaved, on any device).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch

from bimlp.data import build_datasets
from bimlp.data.loading import GlobalBatchSampler, SeededDataset, collate_skipping
from bimlp.train.config import DataConfig

REPO = Path(__file__).resolve().parents[1]
MODELS = ("wavemlp_fp", "naive", "bimlp", "reactnet_a")


def _bench():
    """``benchmarks/bench_train_step.py``, loaded by path: the study's training step is built
    once, there (models, teacher, distillation loss, Adam)."""
    path = REPO / "benchmarks" / "bench_train_step.py"
    spec = importlib.util.spec_from_file_location("bimlp_bench_train_step", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def step_ms(name: str, compiled: bool, device: torch.device, batch: int, steps: int) -> dict:
    bench = _bench()
    args = argparse.Namespace(batch_size=batch)
    one = bench.make_step(bench._study_module(), name, False, compiled, args, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    one()
    sync()
    warmup = time.perf_counter() - t0
    for _ in range(3):
        one()
    sync()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        one()
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    return {"ms": 1e3 * med, "img_s": batch / med, "warmup_s": warmup}


def loader_img_s(workers: int, batches: int, root: str, batch: int) -> float:
    data = build_datasets(DataConfig(dataset="idx", root=root, image_size=32))
    sampler = GlobalBatchSampler(len(data.train), batch, seed=0)
    loader = torch.utils.data.DataLoader(SeededDataset(data.train), batch_sampler=sampler,
                                         num_workers=workers, collate_fn=collate_skipping,
                                         pin_memory=torch.cuda.is_available())
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", required=True)
    p.add_argument("--budget-s", type=float, default=150)
    p.add_argument("--root", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=30)
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    out: dict = {"config": {"batch": args.batch_size, "image_size": 32, "device": str(device),
                            "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
                            "torch": torch.__version__}, "step": {}, "loader_img_s": {}}

    def save() -> None:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)

    def left() -> float:
        return args.budget_s - (time.perf_counter() - start)

    for name in MODELS:
        out["step"][name] = {"eager": step_ms(name, False, device, args.batch_size, args.steps)}
        print(name, "eager", out["step"][name]["eager"], flush=True)
        save()
    for workers in (0, 1, 4):
        if left() < 20:
            break
        try:
            out["loader_img_s"][str(workers)] = loader_img_s(workers, 40, args.root,
                                                             args.batch_size)
        except Exception as e:  # noqa: BLE001 - report and go on to the next part
            out["loader_img_s"][str(workers)] = f"{type(e).__name__}: {e}"
        print("loader workers", workers, out["loader_img_s"][str(workers)], flush=True)
        save()
    for name in ("bimlp", "wavemlp_fp", "naive", "reactnet_a"):
        if left() < 45:
            break
        try:
            out["step"][name]["compile"] = step_ms(name, True, device, args.batch_size,
                                                   args.steps)
        except Exception as e:  # noqa: BLE001
            out["step"][name]["compile"] = f"{type(e).__name__}: {str(e)[:500]}"
        print(name, "compile", out["step"][name]["compile"], flush=True)
        save()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
