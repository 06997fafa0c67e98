"""Ablation study of BiMLP's three components on a small image set (default: Fashion-MNIST).

The paper's central claim: a naively binarized vision MLP collapses, while the multi-branch
binary blocks (MBB), the Uni-shortcut and the cheap full-precision downsampling recover most of
the gap. This script trains, at one size and one training budget:

    wavemlp_fp   the full-precision Wave-MLP (also the distillation teacher: its first seed)
    naive        a naively binarized Wave-MLP: every token / channel FC binary, no extra
                 branches, no Uni-shortcut, Wave-MLP downsampling (3x3 / 2 conv)
    naive+mbb    naive + MBB blocks (multi-branch)
    naive+uni    naive + the Uni-shortcut
    naive+ds     naive + BiMLP downsampling (1x1 conv + mean of SAME max-pools)
    bimlp        all three: BiMLP

Every binary variant uses the project's two-step recipe through the public training API
(:func:`bimlp.train.engine.train`): step 1 binary activations + real weights from scratch,
step 2 binary weights too, initialised strictly from step 1 (``model.init_from``), both steps
distilled from the same frozen teacher. The full-precision variant trains on labels for the
same number of epochs as both binary steps together.

Outputs in ``--out``: ``runs/VARIANT/seedS/`` (the trainer's own files plus ``result.json``),
``results.json``, ``results.md`` (top-1 mean +- std, parameters, BOPs, FLOPs, OPs from
``bimlp.profile``), ``accuracy.png`` and ``curves.png``. Finished runs are skipped and an
interrupted step continues from its ``last.pt``, so re-running the same command resumes.

    python experiments/ablation.py --out runs/ablation                  # Fashion-MNIST
    python experiments/ablation.py --dataset digits --image-size 32     # built-in, offline
    python experiments/ablation.py --dataset idx --root /data/mnist     # MNIST idx files
    python experiments/ablation.py --dataset folder --root /data/imgs --image-size 64
    python experiments/ablation.py --out runs/ablation --report-only    # tables and plots only
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist

# Published full-precision Fashion-MNIST results (full training set and budget), to stand beside.
FLOAT_BASELINES = [
    ("MLP 256-128-100", "0.883"),
    ("two conv layers", "0.916-0.934"),
    ("ResNet-18", "0.949"),
    ("WRN-28-10", "0.959"),
]


@dataclass(frozen=True)
class Variant:
    label: str
    model: str  # registered model name
    # BiMLP ablation switches; None for the full-precision model
    multi_branch: bool | None = None
    uni_shortcut: bool | None = None
    downsample: str | None = None

    @property
    def binary(self) -> bool:
        return self.multi_branch is not None

    def model_kwargs(self) -> dict[str, Any]:
        if not self.binary:
            return {}
        return {"mode": "paper", "multi_branch": self.multi_branch,
                "uni_shortcut": self.uni_shortcut, "downsample": self.downsample}


VARIANTS: dict[str, Variant] = {
    "wavemlp_fp": Variant("Wave-MLP, full precision", "wavemlp_t"),
    "naive": Variant("naive binary Wave-MLP", "bimlp_s", False, False, "wavemlp"),
    "naive+mbb": Variant("naive + MBB", "bimlp_s", True, False, "wavemlp"),
    "naive+uni": Variant("naive + Uni-shortcut", "bimlp_s", False, True, "wavemlp"),
    "naive+ds": Variant("naive + BiMLP downsampling", "bimlp_s", False, False, "bimlp"),
    "bimlp": Variant("BiMLP (MBB + Uni-shortcut + downsampling)", "bimlp_s", True, True, "bimlp"),
}
TEACHER = "wavemlp_fp"


@dataclass
class Study:
    """Everything that defines the study's numbers (saved as study.json; a resume must match)."""

    dataset: str = "idx"  # idx (MNIST format) | digits (built in) | folder (ImageNet layout)
    root: str | None = FASHION_MNIST
    image_size: int | None = None  # None: the data's own size (28 for Fashion-MNIST)
    train_limit: int | None = 3000  # first N training images; None: all
    curve_limit: int | None = 1000  # per-epoch curves on the first N test images; None: all
    epochs: int = 2  # per step; the full-precision model gets 2x (both steps' budget)
    batch_size: int = 64
    lr: float = 1e-3  # Adam, at batch_size (not rescaled), linear decay to 0 within each step
    label_weight: float = 0.0  # 0: pure distillation (ReActNet); 1: labels only
    depths: list[int] = field(default_factory=lambda: [1, 1, 2, 1])
    dims: list[int] = field(default_factory=lambda: [32, 64, 96, 128])
    mlp_ratio: float = 4.0
    max_steps: int | None = None  # cap on batches per epoch (smoke tests); None: all

    def data_section(self) -> dict[str, Any]:
        train_limit = self.train_limit
        if self.max_steps is not None:
            cap = self.max_steps * self.batch_size
            train_limit = cap if train_limit is None else min(train_limit, cap)
        return {"dataset": self.dataset, "root": self.root, "image_size": self.image_size,
                "batch_size": self.batch_size, "eval_batch_size": 256,
                "train_limit": train_limit, "val_limit": self.curve_limit}

    def arch(self) -> dict[str, Any]:
        return {"depths": list(self.depths), "dims": list(self.dims),
                "mlp_ratios": self.mlp_ratio}


# --- one run (executed in a worker process) --------------------------------------------------
def _recipe(study: Study, variant: Variant, seed: int, out_dir: Path, step: int,
            teacher: Path | None) -> dict[str, Any]:
    """The TrainConfig (as a dict) of one step of one run."""
    model: dict[str, Any] = {"name": variant.model, **study.arch(), **variant.model_kwargs()}
    epochs, wd = study.epochs, 1e-5
    if variant.binary:
        model["binary_weights"] = step == 2
        if step == 2:
            model["init_from"] = str(out_dir / "step1" / "model.safetensors")
            wd = 0.0  # ReActNet: no weight decay once the weights are binary
    else:
        epochs = 2 * study.epochs
    distill: dict[str, Any] = {"teacher": None}
    if teacher is not None:
        distill = {"teacher": VARIANTS[TEACHER].model, "teacher_checkpoint": str(teacher),
                   "label_weight": study.label_weight}
    return {
        "model": model,
        "data": study.data_section(),
        "optim": {"epochs": epochs, "lr": study.lr, "lr_ref_batch": None, "weight_decay": wd},
        "distill": distill,
        "run": {"out_dir": str(out_dir / f"step{step}"), "seed": seed, "device": "cpu",
                "progress": False, "tensorboard": False},
    }


def _run_step(recipe: dict[str, Any], echo) -> dict[str, Any]:
    """One step, resumed from its last.pt if it was interrupted; skipped if it finished."""
    from bimlp.train.config import config_from_dict
    from bimlp.train.engine import train

    step_dir = Path(recipe["run"]["out_dir"])
    done = step_dir / "step.json"
    if done.is_file():
        return json.loads(done.read_text())
    last = step_dir / "last.pt"
    start = time.perf_counter()
    result = train(config_from_dict(recipe), resume_from=last if last.is_file() else None,
                   echo=echo)
    record = {"history": result.history, "weights": str(result.weights),
              "wall_s": time.perf_counter() - start}
    _write_json(done, record)
    return record


def _final_eval(study: Study, weights: str, variant: Variant) -> dict[str, float]:
    """Top-1 / top-5 of the trained weights on the whole test split."""
    from torch.utils.data import DataLoader

    import bimlp
    from bimlp.data import build_datasets, collate_skipping
    from bimlp.train.config import DataConfig
    from bimlp.train.engine import evaluate, model_default_cfg

    data = DataConfig(**{**study.data_section(), "val_limit": None, "train_limit": 1})
    bundle = build_datasets(data, model_default_cfg(variant.model))
    loader = DataLoader(bundle.val, batch_size=256, collate_fn=collate_skipping)
    model = bimlp.create_model(variant.model, checkpoint=weights)
    return evaluate(model, loader, _cpu())


def _cpu():
    import torch

    return torch.device("cpu")


def run_one(study: Study, name: str, seed: int, run_dir: str, teacher: str | None,
            threads: int) -> dict[str, Any]:
    """Train one variant with one seed (both steps for binary variants); returns result.json."""
    import torch

    torch.set_num_threads(threads)
    variant, out_dir = VARIANTS[name], Path(run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / "train.log"

    def echo(message: str) -> None:
        with log.open("a") as f:
            f.write(message + "\n")
        print(f"[{name} seed {seed}] {message}", flush=True)

    start = time.perf_counter()
    steps = (1, 2) if variant.binary else (1,)
    teacher_path = Path(teacher) if (teacher and variant.binary) else None
    records = [_run_step(_recipe(study, variant, seed, out_dir, s, teacher_path), echo)
               for s in steps]
    final = records[-1]["history"][-1]
    if study.curve_limit is None:
        test = {"top1": final["val_top1"], "top5": final["val_top5"], "loss": final["val_loss"]}
    else:
        test = _final_eval(study, records[-1]["weights"], variant)
    result = {
        "variant": name, "seed": seed, "top1": test["top1"], "top5": test["top5"],
        "test_loss": test["loss"], "test_images": test.get("images"),
        "weights": records[-1]["weights"], "teacher": str(teacher_path) if teacher_path else None,
        "steps": [{"step": s, "wall_s": r["wall_s"], "history": r["history"]}
                  for s, r in zip(steps, records, strict=True)],
        "wall_s": time.perf_counter() - start,
    }
    _write_json(out_dir / "result.json", result)
    echo(f"done: test top-1 {result['top1']:.2f}% ({result['wall_s']:.0f} s)")
    return result


# --- scheduling ------------------------------------------------------------------------------
def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)


def _run_dir(out: Path, name: str, seed: int) -> Path:
    return out / "runs" / name / f"seed{seed}"


def _check_study(out: Path, study: Study) -> None:
    """A resume must use the settings the finished runs were made with."""
    path = out / "study.json"
    mine = dataclasses.asdict(study)
    if path.is_file():
        old = json.loads(path.read_text())
        diff = [k for k in sorted(set(old) | set(mine)) if old.get(k) != mine.get(k)]
        if diff:
            raise SystemExit(
                f"{out} holds a study with other settings ({', '.join(diff)}: "
                f"{[old.get(k) for k in diff]} here vs {[mine.get(k) for k in diff]} asked); "
                "use another --out"
            )
    else:
        out.mkdir(parents=True, exist_ok=True)
        _write_json(path, mine)


class _Inline:
    """``--jobs 1``: run in this process, one after the other (no start-up cost)."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args))
        except Exception as e:
            fut.set_exception(e)
        return fut


def _pool(jobs: int):
    """``jobs`` worker processes, each used for one run only (a fresh interpreter per run)."""
    if jobs <= 1:
        return _Inline()
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(jobs, mp_context=context, max_tasks_per_child=1)


def run_study(study: Study, out: Path, names: list[str], seeds: list[int], jobs: int,
              threads: int) -> None:
    """Teacher first, then every variant x seed, ``jobs`` processes at a time."""
    teacher_dir = _run_dir(out, TEACHER, seeds[0])
    teacher_weights = teacher_dir / "step1" / "model.safetensors"
    # seed-major order: if time runs out, every variant has its first seeds
    todo = [(n, s) for s in seeds for n in names if (n, s) != (TEACHER, seeds[0])]
    todo = [(n, s) for n, s in todo if not (_run_dir(out, n, s) / "result.json").is_file()]
    need_teacher = not (teacher_dir / "result.json").is_file()
    print(f"{len(todo) + need_teacher} run(s) to do in {out}", flush=True)
    failures: list[str] = []
    with _pool(jobs) as pool:
        futures: dict[Future, str] = {}

        def submit(name: str, seed: int, teacher: str | None) -> Future:
            fut = pool.submit(run_one, study, name, seed, str(_run_dir(out, name, seed)),
                              teacher, threads)
            futures[fut] = f"{name} seed {seed}"
            return fut

        if need_teacher:
            teacher_future = submit(TEACHER, seeds[0], None)
            # Full-precision seeds need no teacher: they share the pool while it trains.
            for n, s in [t for t in todo if t[0] == TEACHER]:
                submit(n, s, None)
            teacher_future.result()  # a failed teacher stops the study (raises here)
        for n, s in todo:
            if n != TEACHER or not need_teacher:
                submit(n, s, str(teacher_weights) if VARIANTS[n].binary else None)
        for fut, what in futures.items():
            try:
                fut.result()
            except Exception as e:  # keep the other runs; report what failed
                failures.append(f"{what}: {type(e).__name__}: {e}")
                print(f"FAILED {what}: {e}", flush=True)
    if failures:
        print(f"{len(failures)} run(s) failed:\n  " + "\n  ".join(failures), flush=True)


# --- report ----------------------------------------------------------------------------------
def profile_variant(study: Study, name: str, in_chans: int, num_classes: int,
                    size: int) -> dict[str, Any]:
    """Parameters, BOPs, FLOPs, OPs of the variant as trained (step 2 for binary ones)."""
    import bimlp

    v = VARIANTS[name]
    kwargs = {**study.arch(), **v.model_kwargs(), "num_classes": num_classes,
              "in_chans": in_chans}
    if v.binary:
        kwargs["binary_weights"] = True
    r = bimlp.profile(bimlp.create_model(v.model, **kwargs), input_size=(in_chans, size, size))
    return {"params": r.params, "binary_params": r.binary_params, "bops": r.bops,
            "flops": r.flops, "ops": r.ops, "size_bytes_packed": r.size_bytes_packed}


def _data_shape(study: Study) -> tuple[int, int, int]:
    """(channels, classes, image size) of the study's data."""
    from bimlp.data import build_datasets
    from bimlp.train.config import DataConfig

    bundle = build_datasets(DataConfig(**{**study.data_section(), "train_limit": 1,
                                          "val_limit": 1}))
    size = int(bundle.eval_cfg["input_size"][-1])
    return bundle.in_chans, bundle.num_classes, size


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def collect(study: Study, out: Path, names: list[str], seeds: list[int]) -> dict[str, Any]:
    """results.json: every finished run, per-variant summary and profile."""
    in_chans, classes, size = _data_shape(study)
    variants = {}
    for name in names:
        runs = [json.loads(p.read_text()) for s in seeds
                if (p := _run_dir(out, name, s) / "result.json").is_file()]
        top1 = [r["top1"] for r in runs]
        mean, std = _mean_std(top1) if top1 else (None, None)
        variants[name] = {
            **dataclasses.asdict(VARIANTS[name]), "binary": VARIANTS[name].binary,
            "seeds": [r["seed"] for r in runs], "top1": top1, "top1_mean": mean,
            "top1_std": std, "missing_seeds": [s for s in seeds
                                               if s not in [r["seed"] for r in runs]],
            "run_wall_s": [r["wall_s"] for r in runs],
            "profile": profile_variant(study, name, in_chans, classes, size),
            "curves": [_curve(r) for r in runs],
        }
    return {"study": dataclasses.asdict(study), "input_size": [in_chans, size, size],
            "classes": classes, "teacher": str(_run_dir(out, TEACHER, seeds[0])),
            "variants": variants, "float_baselines": FLOAT_BASELINES, "machine": _machine()}


def _curve(result: dict[str, Any]) -> dict[str, list[float]]:
    """Per-epoch test top-1 (curve subset) and train top-1 over both steps."""
    rows = [row for step in result["steps"] for row in step["history"]]
    return {"val_top1": [r["val_top1"] for r in rows],
            "train_top1": [r["train_top1"] for r in rows],
            "step_epochs": [len(step["history"]) for step in result["steps"]]}


def _machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}


def _si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:.0f}"


def markdown_table(results: dict[str, Any]) -> str:
    head = ("| variant | MBB | Uni-shortcut | downsample | top-1 % (mean ± std) | seeds | "
            "params | binary params | BOPs | FLOPs | OPs |")
    lines = [head, "|" + "---|" * 11]
    for name, v in results["variants"].items():
        p = v["profile"]
        if v["top1"]:
            acc = f"**{v['top1_mean']:.2f} ± {v['top1_std']:.2f}**"
            per_seed = ", ".join(f"{a:.2f}" for a in v["top1"])
        else:
            acc, per_seed = "not run", ""
        if v["missing_seeds"]:
            per_seed += f" (missing seeds {v['missing_seeds']})"
        yes = lambda b: "-" if b is None else ("yes" if b else "no")
        lines.append(
            f"| {name}: {v['label']} | {yes(v['multi_branch'])} | {yes(v['uni_shortcut'])} | "
            f"{v['downsample'] or 'conv 3x3/2 (fp)'} | {acc} | {per_seed} | "
            f"{_si(p['params'])} | {_si(p['binary_params'])} | {_si(p['bops'])} | "
            f"{_si(p['flops'])} | {_si(p['ops'])} |"
        )
    return "\n".join(lines)


def plot_accuracy(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = [(n, v) for n, v in results["variants"].items() if v["top1"]]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    xs = range(len(items))
    colors = ["tab:gray" if not v["binary"] else "tab:blue" for _, v in items]
    ax.bar(xs, [v["top1_mean"] for _, v in items], yerr=[v["top1_std"] for _, v in items],
           color=colors, capsize=4)
    for i, (_, v) in enumerate(items):
        ax.scatter([i] * len(v["top1"]), v["top1"], color="black", s=8, zorder=3)
        ax.annotate(f"{v['top1_mean']:.1f}", (i, v["top1_mean"]), ha="center",
                    va="bottom", xytext=(0, 6), textcoords="offset points", fontsize=8)
    ax.set_xticks(list(xs), [n for n, _ in items], rotation=20)
    ax.set_ylabel("test top-1 (%)")
    low = min(min(v["top1"]) for _, v in items)
    ax.set_ylim(max(0.0, low - 10), 100)
    s = results["study"]
    data = Path(s["root"]).name if s["dataset"] != "digits" and s["root"] else s["dataset"]
    ax.set_title(f"{data} ablation, {len(items)} variants, "
                 f"mean ± std over seeds (dots: single seeds)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, v in results["variants"].items():
        curves = v["curves"]
        if not curves:
            continue
        for ax, key in zip(axes, ("val_top1", "train_top1"), strict=True):
            n = min(len(c[key]) for c in curves)
            mean = [sum(c[key][i] for c in curves) / len(curves) for i in range(n)]
            ax.plot(range(1, n + 1), mean, marker="o", ms=3, label=name,
                    ls="--" if not v["binary"] else "-")
    epochs = results["study"]["epochs"]
    for ax, title in zip(axes, ("test top-1 (curve subset of the test set)", "train top-1"),
                         strict=True):
        ax.axvline(epochs + 0.5, color="gray", lw=0.8, ls=":")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel(f"epoch (binary: step 1 = 1..{epochs}, step 2 after the dotted line)")
        ax.set_ylabel("%")
        ax.set_title(title + ", mean over seeds", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(study: Study, out: Path, names: list[str], seeds: list[int]) -> dict[str, Any]:
    results = collect(study, out, names, seeds)
    _write_json(out / "results.json", results)
    table = markdown_table(results)
    (out / "results.md").write_text(table + "\n")
    if any(v["top1"] for v in results["variants"].values()):
        plot_accuracy(results, out / "accuracy.png")
        plot_curves(results, out / "curves.png")
    print(table, flush=True)
    return results


# --- command line ----------------------------------------------------------------------------
def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t]


def _opt_int(text: str) -> int | None:
    return None if text.lower() in ("none", "all", "0") else int(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = Study()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/ablation", help="output folder (resumable)")
    p.add_argument("--dataset", default=d.dataset, choices=["idx", "digits", "folder"])
    p.add_argument("--root", default=None,
                   help=f"idx: folder of the four idx files (default {FASHION_MNIST}); "
                        "folder: has train/ and val/")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help=f"comma-separated, from {', '.join(VARIANTS)}")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ...)")
    p.add_argument("--train-limit", type=_opt_int, default=d.train_limit,
                   help="use the first N training images (none: all)")
    p.add_argument("--curve-limit", type=_opt_int, default=d.curve_limit,
                   help="per-epoch curves on the first N test images (none: all); the final "
                        "top-1 always uses the whole test split")
    p.add_argument("--epochs", type=int, default=d.epochs, help="epochs per step")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--label-weight", type=float, default=d.label_weight)
    p.add_argument("--image-size", type=int, default=None, help="default: the data's own")
    p.add_argument("--depths", type=_ints, default=d.depths, help="e.g. 1,1,2,1")
    p.add_argument("--dims", type=_ints, default=d.dims, help="e.g. 32,64,96,128")
    p.add_argument("--mlp-ratio", type=float, default=d.mlp_ratio)
    p.add_argument("--max-steps", type=int, default=None, help="batches per epoch (smoke test)")
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--report-only", action="store_true", help="only rebuild the report")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = args.root
    if root is None and args.dataset == "idx":
        root = FASHION_MNIST
    study = Study(
        dataset=args.dataset, root=root, image_size=args.image_size,
        train_limit=args.train_limit, curve_limit=args.curve_limit, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, label_weight=args.label_weight,
        depths=args.depths, dims=args.dims, mlp_ratio=args.mlp_ratio, max_steps=args.max_steps,
    )
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    seeds = list(range(args.seeds))
    out = Path(args.out)
    _check_study(out, study)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))  # inherited by the workers
    start = time.perf_counter()
    if not args.report_only:
        run_study(study, out, names, seeds, args.jobs, args.threads)
    import torch

    torch.set_num_threads(args.threads)
    write_report(study, out, names, seeds)
    print(f"wall time of this invocation: {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
