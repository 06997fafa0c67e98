"""The Fashion-MNIST study: BiMLP's three components and ReActNet-A at one budget (issue 10).

The paper's central claim: a naively binarized vision MLP collapses, while the multi-branch
binary blocks (MBB), the Uni-shortcut and the cheap full-precision downsampling recover most of
the gap, beating binary CNNs such as ReActNet-A at comparable OPs. This script trains, on the
full training split, at one resolution and one budget:

    wavemlp_fp   the full-precision Wave-MLP-XS (also the distillation teacher: its seed 0)
    naive        naively binarized Wave-MLP: every token / channel FC binary, no extra branches,
                 no Uni-shortcut, Wave-MLP downsampling (full-precision 3x3 / 2 conv)
    bimlp        all three components: BiMLP-XS
    reactnet_a   ReActNet-A at half width, stem stride 1 (about the OPs of the BiMLP variants)
    naive+mbb    naive + MBB blocks
    naive+uni    naive + Uni-shortcut
    naive+ds     naive + BiMLP downsampling (1x1 conv + mean of SAME max-pools)

Runs go in that order (the headline rows, seed by seed, then the single-component rows). Every
binary variant uses the two-step recipe through the public training API
(:func:`bimlp.train.engine.train`): step 1 binary activations + real weights from scratch,
step 2 binary weights too, loaded strictly from step 1, both steps distilled from the same
frozen teacher; the full-precision model trains on labels for both steps' epochs.

Resumable at two levels. Each finished run writes a small result file
``docs/results/runs/VARIANT__seedS.json`` (test top-1, per-epoch curves, settings; no weights)
and a rerun skips it, so a fresh clone with those files continues where the last one stopped.
Inside a run, the trainer's ``last.pt`` (under ``--work``, never committed) resumes the epoch.
``--report-only`` rebuilds ``docs/results/fashion_mnist.json``, the table, the charts and the
table block in docs/RESULTS.md from the result files alone.

    python experiments/ablation.py                               # the study (resumable)
    python experiments/ablation.py --report-only                 # json, table, charts
    python experiments/ablation.py --dataset idx --root DIR      # any MNIST-format idx folder
    python experiments/ablation.py --dataset folder --root DIR --image-size 64 --stem-stride 4
    python experiments/ablation.py --device cuda                 # a GPU, same study
    python experiments/ablation.py --device cuda --compile --jobs 18 --threads 1
                                                                 # a GPU, 18 runs side by side
    OUT=DIR bash experiments/gpu_study.sh                        # that, within a time limit
    python experiments/ablation.py --probe --val-holdout 10000 --train-limit 5000 ...  # checks
    python experiments/ablation.py --variants naive,bimlp --lr 3e-3 --results DIR --work DIR2 \
        --teacher-from docs/results runs/fashion_mnist  # one setting changed, the study's teacher
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
RESULTS = REPO / "docs" / "results"

# Published full-precision Fashion-MNIST results (full training set and budget), to stand beside:
# the Fashion-MNIST benchmark (Xiao et al. 2017, the dataset's README / zalandoresearch results).
FLOAT_BASELINES = [
    ("MLP 256-128-100", "0.883"),
    ("two conv layers", "0.916-0.934"),
    ("ResNet-18", "0.949"),
]


@dataclass(frozen=True)
class Variant:
    label: str
    model: str  # registered model name
    binary: bool
    # BiMLP ablation switches; None for the other families
    multi_branch: bool | None = None
    uni_shortcut: bool | None = None
    downsample: str | None = None

    @property
    def family(self) -> str:
        return "reactnet" if self.model.startswith("reactnet") else "mlp"

    def model_kwargs(self, study: Study) -> dict[str, Any]:
        if self.family == "reactnet":
            return {"stem_stride": study.reactnet_stem_stride}
        kwargs: dict[str, Any] = {"depths": list(study.depths), "dims": list(study.dims),
                                  "mlp_ratios": study.mlp_ratio, "stem_stride": study.stem_stride}
        if self.multi_branch is not None:
            kwargs.update(mode="paper", multi_branch=self.multi_branch,
                          uni_shortcut=self.uni_shortcut, downsample=self.downsample)
        return kwargs


VARIANTS: dict[str, Variant] = {
    "wavemlp_fp": Variant("Wave-MLP, full precision", "wavemlp_xs", False),
    "naive": Variant("naive binary Wave-MLP", "bimlp_xs", True, False, False, "wavemlp"),
    "bimlp": Variant("BiMLP (MBB + Uni-shortcut + downsampling)", "bimlp_xs", True, True, True,
                     "bimlp"),
    "reactnet_a": Variant("ReActNet-A, half width", "reactnet_a_xs", True),
    "naive+mbb": Variant("naive + MBB", "bimlp_xs", True, True, False, "wavemlp"),
    "naive+uni": Variant("naive + Uni-shortcut", "bimlp_xs", True, False, True, "wavemlp"),
    "naive+ds": Variant("naive + BiMLP downsampling", "bimlp_xs", True, False, False, "bimlp"),
}
HEADLINE = ("wavemlp_fp", "naive", "bimlp", "reactnet_a")
TEACHER, TEACHER_SEED = "wavemlp_fp", 0  # every binary run distils from this one model


@dataclass
class Study:
    """Everything that defines the study's numbers; stored in every result file, and a resume
    must match it (the device, jobs and threads are not part of it)."""

    dataset: str = "idx"  # idx (MNIST format) | folder (ImageNet layout) | digits (built in)
    root: str | None = FASHION_MNIST
    image_size: int | None = 32  # Fashion-MNIST's 28 px resized (bilinear) to 32
    stem_stride: int = 2  # BiMLP / Wave-MLP stem: 32 -> 16, stages 16/8/4/2
    reactnet_stem_stride: int = 1  # ReActNet-A: 32 -> 32, stages 32/16/8/4/2
    train_limit: int | None = None  # None: the whole training split
    val_holdout: int = 0  # >0: hold out this many seeded training images as the eval set (probe)
    epochs: int = 8  # per step; the full-precision model gets 2x (both steps' budget)
    batch_size: int = 128
    lr: float = 1e-3  # Adam at batch_size (not rescaled), linear decay to 0 within each step
    # {parameter-name glob: factor}: those parameters at lr x factor in every step and variant
    # (the trainer's optim.lr_mult); None in every study before it existed
    lr_mult: dict[str, float] | None = None
    label_weight: float = 0.0  # 0: pure distillation (ReActNet); 1: labels only
    teacher: bool = True  # False: binary variants learn from labels only (probe)
    depths: list[int] = field(default_factory=lambda: [1, 1, 2, 1])
    dims: list[int] = field(default_factory=lambda: [32, 64, 96, 128])
    mlp_ratio: float = 4.0
    max_steps: int | None = None  # cap on batches per epoch (smoke tests); None: all
    # batches: images on the training device, whole batches shifted there (bimlp.data.batches);
    # samples: the per-sample DataLoader (same augmentation, other draws, ~10x slower to load)
    loader: str = "batches"

    def data_section(self, root: str | None = None) -> dict[str, Any]:
        train_limit = self.train_limit
        if self.max_steps is not None:
            cap = self.max_steps * self.batch_size
            train_limit = cap if train_limit is None else min(train_limit, cap)
        return {"dataset": self.dataset, "root": root or self.root,
                "image_size": self.image_size, "batch_size": self.batch_size,
                "eval_batch_size": 500, "train_limit": train_limit, "val_limit": None,
                "loader": self.loader}


@dataclass(frozen=True)
class Execution:
    """How the runs execute; recorded in each result file, not part of the study's numbers
    (a resume may change them)."""

    device: str = "cpu"
    threads: int = 2
    compile: bool = False  # torch.compile student and teacher (run.compile)
    fast_path: bool = True  # the models' fast training path (run.fast_path): same function
    workers: int = 0  # DataLoader workers per run (samples are seeded per index: same data)
    # last.pt also every N optimizer steps inside an epoch (run.checkpoint_steps): a run killed
    # with its machine loses at most N steps instead of the epoch; absent in earlier result files
    checkpoint_steps: int = 50


# --- data: the optional seeded validation split --------------------------------------------
def holdout_root(study: Study, work: Path) -> str | None:
    """With ``val_holdout``: an idx folder whose test split is ``val_holdout`` training images
    chosen by a fixed seed and whose training split is the rest (the real test set unused)."""
    if study.val_holdout <= 0:
        return study.root
    if study.dataset != "idx":
        raise SystemExit("--val-holdout needs --dataset idx")
    import numpy as np

    from bimlp.data import load_idx_split

    folder = work / f"holdout{study.val_holdout}"
    done = folder / "done"
    if done.is_file():
        return str(folder)
    x, y = load_idx_split(study.root, "train")
    if not 0 < study.val_holdout < len(y):
        raise SystemExit(f"--val-holdout {study.val_holdout}: the training split has {len(y)}")
    order = np.random.default_rng(12345).permutation(len(y))
    val, train = order[: study.val_holdout], order[study.val_holdout:]
    folder.mkdir(parents=True, exist_ok=True)
    for split, idx in (("train", train), ("t10k", val)):
        images = x[idx, 0].numpy()
        _write_idx(folder / f"{split}-images-idx3-ubyte", images)
        _write_idx(folder / f"{split}-labels-idx1-ubyte", y[idx].numpy().astype("uint8"))
    done.write_text("ok\n")
    return str(folder)


def _write_idx(path: Path, array) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype("uint8").tobytes())


# --- one run ------------------------------------------------------------------------------------
def _recipe(study: Study, name: str, seed: int, run_dir: Path, step: int, root: str | None,
            teacher: Path | None, ex: Execution) -> dict[str, Any]:
    """The TrainConfig (as a dict) of one step of one run."""
    variant = VARIANTS[name]
    model: dict[str, Any] = {"name": variant.model, "extra": variant.model_kwargs(study)}
    epochs, wd = study.epochs, 1e-5
    if variant.binary:
        model["binary_weights"] = step == 2
        if step == 2:
            model["init_from"] = str(run_dir / "step1" / "model.safetensors")
            wd = 0.0  # ReActNet: no weight decay once the weights are binary
    else:
        epochs = 2 * study.epochs
    distill: dict[str, Any] = {"teacher": None}
    if teacher is not None:
        distill = {"teacher": VARIANTS[TEACHER].model, "teacher_checkpoint": str(teacher),
                   "label_weight": study.label_weight}
    return {
        "model": model,
        "data": {**study.data_section(root), "workers": ex.workers},
        "optim": {"epochs": epochs, "lr": study.lr, "lr_ref_batch": None, "weight_decay": wd,
                  **({"lr_mult": study.lr_mult} if study.lr_mult else {})},
        "distill": distill,
        "run": {"out_dir": str(run_dir / f"step{step}"), "seed": seed, "device": ex.device,
                "threads": ex.threads, "compile": ex.compile,
                "fast_path": ex.fast_path, "checkpoint_steps": ex.checkpoint_steps,
                "progress": False,
                "tensorboard": False},
    }


def _run_step(recipe: dict[str, Any], echo) -> dict[str, Any]:
    """One step, resumed from its last.pt if it was interrupted; skipped if it finished and its
    weights are still there (a finished step's last.pt gives them back exactly)."""
    from bimlp.train.config import config_from_dict
    from bimlp.train.engine import train

    step_dir = Path(recipe["run"]["out_dir"])
    done = step_dir / "step.json"
    if done.is_file() and (step_dir / "model.safetensors").is_file():
        return json.loads(done.read_text())
    last = step_dir / "last.pt"
    start = time.perf_counter()
    result = train(config_from_dict(recipe), resume_from=last if last.is_file() else None,
                   echo=echo)
    record = {"history": result.history, "weights": str(result.weights),
              "wall_s": time.perf_counter() - start}
    _write_json(done, record)
    return record


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _tensors_sha256(path: Path) -> str:
    """A hash of the tensors of a safetensors file -- each name (sorted), dtype, shape and bytes
    -- which, unlike the file's hash, does not depend on the order in which the file's header
    lists its metadata (safetensors writes that in no fixed order): the same weights, written
    twice, give the same value."""
    import torch

    from bimlp.checkpoint import read_safetensors

    h = hashlib.sha256()
    state, _ = read_safetensors(path)
    for name in sorted(state):
        t = state[name].detach().contiguous()
        h.update(f"{name}\0{str(t.dtype).removeprefix('torch.')}\0{list(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# what identifies a teacher's weights in the result files: ``sha256``, the file's hash (what
# every result file has), and ``tensors_sha256``, the tensors' hash (since 2026-12-07), by which
# the report tells trainings of the teacher apart where present
TEACHER_HASHES = ("sha256", "tensors_sha256")


def _identity(weights: Path) -> dict[str, str]:
    """The teacher's ``TEACHER_HASHES`` for its weights file."""
    return dict(zip(TEACHER_HASHES, (_sha256(weights), _tensors_sha256(weights)), strict=True))


def _curve_rows(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5",
            "train_img_s", "epoch_s")
    return [{k: row[k] for k in keys if k in row} for row in history]


def run_one(study: Study, name: str, seed: int, work: Path, results: Path, root: str | None,
            teacher: dict[str, Any] | None, ex: Execution, commit: bool) -> dict[str, Any]:
    """Train one variant with one seed (both steps for binary ones); writes its result file."""
    import torch

    torch.set_num_threads(ex.threads)
    variant, run_dir = VARIANTS[name], work / "runs" / name / f"seed{seed}"
    _claim_run_dir(run_dir, study)
    log = run_dir / "train.log"

    def echo(message: str) -> None:
        with log.open("a") as f:
            f.write(message + "\n")
        print(f"[{time.strftime('%H:%M:%S')} {name} seed {seed}] {message}", flush=True)

    start = time.perf_counter()
    steps = (1, 2) if variant.binary else (1,)
    teacher_path = Path(teacher["weights"]) if (teacher and variant.binary) else None
    records = []
    for s in steps:
        try:
            records.append(_run_step(_recipe(study, name, seed, run_dir, s, root, teacher_path,
                                             ex), echo))
        except Exception as e:  # noqa: BLE001 - a compiler failure must not cost the run
            if not ex.compile:
                raise
            echo(f"step {s} failed compiled ({type(e).__name__}: {str(e)[:300]}); "
                 "retrying it eager from its last checkpoint")
            ex = dataclasses.replace(ex, compile=False)
            records.append(_run_step(_recipe(study, name, seed, run_dir, s, root, teacher_path,
                                             ex), echo))
    final = records[-1]["history"][-1]
    result = {
        "variant": name, "seed": seed, "study": dataclasses.asdict(study),
        "top1": final["val_top1"] / 100, "top5": final["val_top5"] / 100,
        "test_loss": final["val_loss"], "test_images": final.get("val_images"),
        "eval_set": "holdout" if study.val_holdout else "test",
        "teacher": ({k: teacher[k] for k in ("variant", "seed", "top1", *TEACHER_HASHES)}
                    if teacher_path else None),
        "steps": [{"step": s, "epochs": len(r["history"]), "wall_s": r["wall_s"],
                   "curve": _curve_rows(r["history"])}
                  for s, r in zip(steps, records, strict=True)],
        "wall_s": time.perf_counter() - start, "device": ex.device, "threads": ex.threads,
        "execution": dataclasses.asdict(ex), "machine": _machine(),
    }
    path = result_path(results, name, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_json(path, result)
    echo(f"done: top-1 {100 * result['top1']:.2f}% ({result['wall_s']:.0f} s) -> {path}")
    if commit:
        _git_commit(path, f"Fashion-MNIST study: {name} seed {seed} finished "
                          f"({100 * result['top1']:.2f} % top-1)")
    return result


def _claim_run_dir(run_dir: Path, study: Study) -> None:
    """A work folder's finished steps and checkpoints are reused only by the same study:
    ``study.json`` records its settings, and other settings are an error naming it."""
    marker, mine = run_dir / "study.json", dataclasses.asdict(study)
    if marker.is_file():
        old = json.loads(marker.read_text())
        diff = [k for k in sorted(set(old) | set(mine)) if old.get(k) != mine.get(k)]
        if diff:
            what = ", ".join(f"{k}: {old.get(k)!r} there, {mine.get(k)!r} here" for k in diff)
            raise SystemExit(f"{marker}: this work folder holds a run with other settings "
                             f"({what}); use another --work")
        return
    if run_dir.is_dir() and any(run_dir.glob("step*")):
        raise SystemExit(f"{run_dir} holds training steps but no study.json, so their settings "
                         "are unknown; delete it or use another --work")
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_json(marker, mine)


def _git_commit(path: Path, message: str) -> None:
    """Commit only this file (``git commit -- path``), leaving anything else staged alone."""
    try:
        subprocess.run(["git", "add", "--", str(path)], cwd=path.parent, check=True,
                       capture_output=True, timeout=60)
        subprocess.run(["git", "commit", "-q", "-m", message, "--", str(path)], cwd=path.parent,
                       check=True, capture_output=True, timeout=60)
        print(f"committed {path}", flush=True)
    except (OSError, subprocess.SubprocessError) as e:  # the run file is written either way
        print(f"WARNING: could not commit {path}: {e}", flush=True)


# --- scheduling -----------------------------------------------------------------------------
def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    tmp.replace(path)


def result_path(results: Path, name: str, seed: int) -> Path:
    return results / "runs" / f"{name}__seed{seed}.json"


def read_result(results: Path, name: str, seed: int, study: Study | None) -> dict | None:
    """A finished run's result file, or None; one made with other settings is an error."""
    path = result_path(results, name, seed)
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SystemExit(f"{path}: not valid JSON ({e}); delete it to rerun that run") from e
    if study is not None:
        mine = dataclasses.asdict(study)
        old = result.get("study", {})
        diff = [k for k in sorted(set(old) | set(mine)) if old.get(k) != mine.get(k)]
        if diff:
            what = ", ".join(f"{k}: {old.get(k)!r} there, {mine.get(k)!r} here" for k in diff)
            raise SystemExit(f"{path} was made with other settings ({what}); "
                             "use another --results folder")
    return result


def run_order(names: list[str], seeds: list[int]) -> list[tuple[str, int]]:
    """Teacher first, then the headline rows seed by seed, then the single-component rows."""
    head = [n for n in HEADLINE if n in names]
    rest = [n for n in VARIANTS if n in names and n not in HEADLINE]
    order = [(n, s) for group in (head, rest) for s in seeds for n in group]
    if (TEACHER, TEACHER_SEED) in order:
        order.remove((TEACHER, TEACHER_SEED))
        order.insert(0, (TEACHER, TEACHER_SEED))
    return order


def teacher_weights(work: Path, seed: int = TEACHER_SEED) -> Path:
    """Where a study's teacher keeps its weights in its work folder."""
    return work / "runs" / TEACHER / f"seed{seed}" / "step1" / "model.safetensors"


def ensure_teacher(study: Study, work: Path, results: Path, root: str | None, ex: Execution,
                   commit: bool, seed: int = TEACHER_SEED) -> dict[str, Any]:
    """The teacher's weights (training it if they are missing) and what identifies them."""
    weights = teacher_weights(work, seed)
    recorded = read_result(results, TEACHER, seed, study)
    if recorded is None or not weights.is_file():
        if recorded is not None:
            print(f"the teacher's result file exists but not its weights ({weights}): "
                  "training it again from its seed (resumed where a last.pt is left; on "
                  "another machine the weights need not come out the same: compare the top-1 "
                  "below)", flush=True)
        fresh = run_one(study, TEACHER, seed, work, results if recorded is None else work,
                        root, None, ex, commit and recorded is None)
        if recorded is not None and abs(fresh["top1"] - recorded["top1"]) > 1e-9:
            print(f"WARNING: retrained teacher top-1 {fresh['top1']:.4f} differs from the "
                  f"recorded {recorded['top1']:.4f}: later runs use another teacher", flush=True)
        recorded = recorded or fresh
        top1 = fresh["top1"]
    else:
        top1 = recorded["top1"]
    return {"variant": TEACHER, "seed": seed, "weights": str(weights), "top1": top1,
            **_identity(weights)}


# the fields that must match for another study's teacher to fit this one's students and data
TEACHER_FIT = ("dataset", "image_size", "stem_stride", "depths", "dims", "mlp_ratio")


def borrowed_teacher(study: Study, results: Path, work: Path) -> dict[str, Any]:
    """Another study's teacher (``--teacher-from RESULTS WORK``): its result file in
    ``results``, its weights in ``work``. For checks that change one setting of the study (the
    learning rate, the budget) and keep its teacher, so that only that setting differs."""
    if not study.teacher:
        raise SystemExit("--teacher-from with --no-teacher: the binary runs would ignore it")
    recorded = read_result(results, TEACHER, TEACHER_SEED, None)
    if recorded is None:
        raise SystemExit(f"--teacher-from: no teacher result file "
                         f"{result_path(results, TEACHER, TEACHER_SEED)}")
    theirs, mine = recorded.get("study", {}), dataclasses.asdict(study)
    diff = [k for k in TEACHER_FIT if theirs.get(k) != mine.get(k)]
    if diff:
        what = ", ".join(f"{k}: {theirs.get(k)!r} there, {mine.get(k)!r} here" for k in diff)
        raise SystemExit(f"--teacher-from: the teacher in {results} was trained for other data "
                         f"or another size ({what})")
    weights = teacher_weights(work)
    if not weights.is_file():
        raise SystemExit(f"--teacher-from: the teacher's weights {weights} are missing (its work "
                         "folder is the other study's --work; on a fresh machine, that study's "
                         "command with --teacher-only retrains them)")
    return {"variant": TEACHER, "seed": TEACHER_SEED, "weights": str(weights),
            "top1": recorded["top1"], **_identity(weights)}


def run_study(study: Study, work: Path, results: Path, names: list[str], seeds: list[int],
              ex: Execution, commit: bool, teacher: dict[str, Any] | None = None) -> list[str]:
    """Every (variant, seed) of ``names`` x ``seeds`` without a result file, one after the
    other; binary runs distil from ``teacher`` (another study's) or from this study's own."""
    root = holdout_root(study, work)
    order = run_order(names, seeds)
    todo = [(n, s) for n, s in order if read_result(results, n, s, study) is None]
    print(f"{len(todo)} run(s) to do, results in {results}, work files in {work}", flush=True)
    failures: list[str] = []
    for name, seed in todo:
        if read_result(results, name, seed, study) is not None:
            continue  # the teacher, trained just before
        try:
            if VARIANTS[name].binary and study.teacher and teacher is None:
                teacher = ensure_teacher(study, work, results, root, ex, commit)
                print(f"teacher: {teacher['variant']} seed {teacher['seed']}, top-1 "
                      f"{100 * teacher['top1']:.2f}%, sha256 {teacher['sha256'][:16]}", flush=True)
            run_one(study, name, seed, work, results, root, teacher, ex, commit)
        except Exception as e:  # keep going with the other runs; report what failed
            failures.append(f"{name} seed {seed}: {type(e).__name__}: {e}")
            print(f"FAILED {failures[-1]}", flush=True)
            if name == TEACHER and seed == TEACHER_SEED:
                break  # nothing binary can run without the teacher
    if failures:
        print(f"{len(failures)} run(s) failed:\n  " + "\n  ".join(failures), flush=True)
    return failures


def _teacher_ready(study: Study, work: Path, results: Path) -> bool:
    weights = teacher_weights(work)
    return read_result(results, TEACHER, TEACHER_SEED, study) is not None and weights.is_file()


def run_parallel(study: Study, work: Path, results: Path, names: list[str], seeds: list[int],
                 ex: Execution, commit: bool, jobs: int, deadline_s: float | None,
                 argv: list[str], stagger_s: float = 0.0, borrowed: bool = False) -> list[str]:
    """The same runs as :func:`run_study`, ``jobs`` at a time, each in a child process of this
    script (one variant, one seed); for a GPU, whose small-batch steps leave it mostly idle.

    The teacher goes first; binary runs start once its weights exist. Each child writes its own
    result file exactly as a sequential run does; this process commits them (one at a time).
    With ``deadline_s``, children still running then are stopped: their ``last.pt`` (the last
    finished epoch) lets a later invocation resume them. With ``stagger_s``, a variant's other
    seeds start that long after its first, so that they find its compiled graphs in the
    compiler's on-disk cache instead of compiling the same graphs side by side. With
    ``borrowed`` (``--teacher-from`` in ``argv``), the children use that teacher and none waits.
    """
    root = holdout_root(study, work)
    order = run_order(names, seeds)
    pending = [(n, s) for n, s in order if read_result(results, n, s, study) is None]
    print(f"{len(pending)} run(s) to do, {jobs} at a time, results in {results}, work files in "
          f"{work}", flush=True)
    needs_teacher = study.teacher and not borrowed and any(VARIANTS[n].binary
                                                           for n, _ in pending)
    if needs_teacher and read_result(results, TEACHER, TEACHER_SEED, study) is not None \
            and not _teacher_ready(study, work, results):
        # fresh clone: weights absent; nothing binary can start before them, so every thread
        alone = dataclasses.replace(ex, threads=ex.threads * jobs)
        ensure_teacher(study, work, results, root, alone, commit)
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # the child: this command line, minus committing, for one run
    base = [a for a in argv if a != "--commit"]
    start, failures = time.monotonic(), []
    running: dict[tuple[str, int], tuple[subprocess.Popen, Any, float]] = {}
    teacher_failed = False
    first_start: dict[str, float] = {}  # variant -> when its first run started
    while pending or running:
        if deadline_s is not None and time.monotonic() - start > deadline_s:
            for proc, _, _ in running.values():
                proc.terminate()
            for (name, seed), (proc, log, _) in running.items():
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                log.close()
                failures.append(f"{name} seed {seed}: stopped at the deadline (resumable)")
            failures += [f"{n} seed {s}: not started before the deadline" for n, s in pending]
            print(f"deadline of {deadline_s:.0f} s reached: stopped {len(running)} run(s), "
                  f"{len(pending)} not started", flush=True)
            break
        ready = not needs_teacher or _teacher_ready(study, work, results)
        for item in list(pending):
            if len(running) >= jobs:
                break
            name, seed = item
            if VARIANTS[name].binary and study.teacher and not ready:
                if teacher_failed:
                    pending.remove(item)
                    failures.append(f"{name} seed {seed}: no teacher")
                continue
            if name in first_start and time.monotonic() - first_start[name] < stagger_s:
                continue
            first_start.setdefault(name, time.monotonic())
            pending.remove(item)
            log = (logs / f"{name}__seed{seed}.log").open("a")
            cmd = [sys.executable, str(Path(__file__).resolve()), *base, "--variants", name,
                   "--seed-list", str(seed), "--jobs", "1", "--no-report"]
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    env={**os.environ, "OMP_NUM_THREADS": str(ex.threads)})
            running[item] = (proc, log, time.monotonic())
            print(f"[{time.strftime('%H:%M:%S')}] started {name} seed {seed} (pid {proc.pid})",
                  flush=True)
        for item, (proc, log, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[item]
            name, seed = item
            result = read_result(results, name, seed, study)
            if proc.returncode == 0 and result is not None:
                print(f"[{time.strftime('%H:%M:%S')}] {name} seed {seed}: top-1 "
                      f"{100 * result['top1']:.2f}% ({time.monotonic() - t0:.0f} s)", flush=True)
                if commit:
                    _git_commit(result_path(results, name, seed),
                                f"Fashion-MNIST study: {name} seed {seed} finished "
                                f"({100 * result['top1']:.2f} % top-1)")
            else:
                tail = (logs / f"{name}__seed{seed}.log").read_text()[-1500:]
                failures.append(f"{name} seed {seed}: exit {proc.returncode}")
                print(f"FAILED {failures[-1]}; its log ends:\n{tail}", flush=True)
                teacher_failed |= item == (TEACHER, TEACHER_SEED)
        time.sleep(1.0)
    if failures:
        print(f"{len(failures)} run(s) not finished:\n  " + "\n  ".join(failures), flush=True)
    return failures


# --- report -------------------------------------------------------------------------------------
def profile_variant(study: Study, name: str, in_chans: int, classes: int) -> dict[str, Any]:
    """Parameters, BOPs, FLOPs, OPs of the variant as evaluated (step 2 for binary ones)."""
    import bimlp

    v = VARIANTS[name]
    kwargs = {**v.model_kwargs(study), "num_classes": classes, "in_chans": in_chans}
    if v.binary:
        kwargs["binary_weights"] = True
    size = study.image_size or 28
    r = bimlp.profile(bimlp.create_model(v.model, **kwargs), input_size=(in_chans, size, size))
    return {"params": r.params, "binary_params": r.binary_params, "bops": r.bops,
            "flops": r.flops, "ops": r.ops, "size_bytes_packed": r.size_bytes_packed}


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def collect(study: Study, results: Path, names: list[str], seeds: list[int],
            in_chans: int = 1, classes: int = 10, train_images: int | None = None,
            test_images: int | None = None) -> dict[str, Any]:
    """The aggregate (``fashion_mnist.json``) from the finished result files."""
    variants: dict[str, Any] = {}
    rows = [n for n in HEADLINE if n in names] + [n for n in VARIANTS
                                                   if n in names and n not in HEADLINE]
    for name in rows:
        runs = [r for s in seeds if (r := read_result(results, name, s, study)) is not None]
        top1 = [r["top1"] for r in runs]
        mean, std = _mean_std(top1)
        v = VARIANTS[name]
        variants[name] = {
            "label": v.label, "model": v.model, "binary": v.binary,
            "multi_branch": v.multi_branch, "uni_shortcut": v.uni_shortcut,
            "downsample": v.downsample,
            "stem_stride": study.reactnet_stem_stride if v.family == "reactnet"
            else study.stem_stride,
            "seeds": [r["seed"] for r in runs], "top1": top1, "top1_mean": mean, "top1_std": std,
            "missing_seeds": [s for s in seeds if s not in [r["seed"] for r in runs]],
            "complete": len(runs) == len(seeds),
            **profile_variant(study, name, in_chans, classes),
            "wall_s": [r["wall_s"] for r in runs],
            "curves": [{"seed": r["seed"], "steps": [
                {"step": st["step"], "val_top1": [row["val_top1"] / 100 for row in st["curve"]],
                 "train_top1": [row["train_top1"] / 100 for row in st["curve"]],
                 "train_loss": [row["train_loss"] for row in st["curve"]]}
                for st in r["steps"]]} for r in runs],
        }
        taught = [r for r in runs if r.get("teacher")]
        if taught:
            variants[name]["teacher"] = taught[0]["teacher"]
            # a fresh machine retrains the teacher from the same seed, which need not give the
            # same weights: record which one each seed distilled from
            variants[name]["teachers"] = [
                {"run_seed": r["seed"], "top1": r["teacher"]["top1"],
                 **{k: r["teacher"][k] for k in TEACHER_HASHES if k in r["teacher"]}}
                for r in taught]
    return {
        "dataset": Path(study.root).name if study.root else study.dataset,
        "train_images": train_images, "test_images": test_images,
        "image_size": study.image_size, "stem_stride": study.stem_stride,
        "reactnet_stem_stride": study.reactnet_stem_stride,
        "epochs_per_step": study.epochs, "fp_epochs": 2 * study.epochs,
        "seeds": seeds, "study": dataclasses.asdict(study),
        "variants": variants, "float_baselines": FLOAT_BASELINES,
    }


def _data_counts(study: Study) -> tuple[int, int, int, int]:
    """(channels, classes, training images, test images) of the study's data."""
    from bimlp.data import build_datasets
    from bimlp.train.config import DataConfig

    bundle = build_datasets(DataConfig(**study.data_section()))
    return bundle.in_chans, bundle.num_classes, len(bundle.train), len(bundle.val)


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
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:.0f}"


def markdown_table(agg: dict[str, Any]) -> str:
    head = ("| variant | MBB | Uni-shortcut | downsample | top-1 % (mean ± std) | every seed | "
            "params | BOPs | FLOPs | OPs |")
    lines = [head, "|" + "---|" * 10]
    yes = lambda b: "-" if b is None else ("yes" if b else "no")  # noqa: E731
    for name, v in agg["variants"].items():
        if v["top1"]:
            acc = f"**{100 * v['top1_mean']:.2f} ± {100 * v['top1_std']:.2f}**"
            seeds = ", ".join(f"{100 * a:.2f}" for a in v["top1"])
        else:
            acc, seeds = "not run yet", ""
        if v["missing_seeds"]:
            acc += " (incomplete)" if v["top1"] else ""
            seeds += f" (missing seeds {', '.join(map(str, v['missing_seeds']))})"
        ds = v["downsample"] or ("conv 3x3/2 (fp)" if v["model"].startswith("wavemlp")
                                 else "binary 3x3/2 + avg-pool shortcut")
        lines.append(
            f"| {name}: {v['label']} | {yes(v['multi_branch'])} | {yes(v['uni_shortcut'])} | "
            f"{ds} | {acc} | {seeds.strip()} | {_si(v['params'])} | {_si(v['bops'])} | "
            f"{_si(v['flops'])} | {_si(v['ops'])} |")
    return "\n".join(lines + _teacher_note(agg))


def _teacher_note(agg: dict[str, Any]) -> list[str]:
    """Below the table, where the binary runs did not all distil from the same weights: which
    seeds used which training of the teacher (told apart by the hash of its tensors, or of its
    weights file in result files older than that hash)."""
    used: dict[str, dict[str, Any]] = {}
    for name, v in agg["variants"].items():
        for t in v.get("teachers", []):
            key = t.get("tensors_sha256") or t["sha256"]
            entry = used.setdefault(key, {"top1": t["top1"], "runs": []})
            entry["runs"].append(f"{name} {t['run_seed']}")
    if len(used) < 2:
        return []
    lines = ["", f"The binary runs distilled from {len(used)} trainings of the same teacher "
             "(same seed and recipe; a new machine retrains it, and training is not bit-for-bit "
             "reproducible across machines):"]
    for sha, entry in used.items():
        lines.append(f"- sha256 {sha[:12]}, top-1 {100 * entry['top1']:.2f} %: "
                     + ", ".join(entry["runs"]))
    return lines


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_vs_ops(agg: dict[str, Any], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, v in agg["variants"].items():
        if not v["top1"]:
            continue
        color = ("tab:gray" if not v["binary"] else "tab:red" if name == "reactnet_a"
                 else "tab:blue")
        ax.errorbar([v["ops"]], [100 * v["top1_mean"]], yerr=[100 * v["top1_std"]], fmt="o",
                    color=color, capsize=4)
        ax.scatter([v["ops"]] * len(v["top1"]), [100 * a for a in v["top1"]], color=color, s=6)
        tag = name + ("" if v["complete"] else " (incomplete)")
        ax.annotate(tag, (v["ops"], 100 * v["top1_mean"]), xytext=(6, 4),
                    textcoords="offset points", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("OPs per image (FLOPs + BOPs / 64), log scale")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(f"{agg['dataset']}: accuracy vs OPs, mean ± std over seeds (dots: seeds); "
                 "blue BiMLP variants, red ReActNet-A, grey full precision", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(agg: dict[str, Any], path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for name, v in agg["variants"].items():
        if not v["curves"]:
            continue
        for ax, key in zip(axes, ("val_top1", "train_loss"), strict=True):
            series = [[x for st in c["steps"] for x in st[key]] for c in v["curves"]]
            n = min(len(s) for s in series)
            mean = [sum(s[i] for s in series) / len(series) for i in range(n)]
            scale = 100 if key == "val_top1" else 1
            ax.plot(range(1, n + 1), [scale * m for m in mean], marker="o", ms=2.5,
                    label=f"{name} ({len(series)} seed{'s' * (len(series) > 1)})",
                    ls="--" if not v["binary"] else "-")
    e = agg["epochs_per_step"]
    for ax, title in zip(axes, ("test top-1 % after every epoch", "training loss (KD for "
                                "binary, CE for full precision)"), strict=True):
        ax.axvline(e + 0.5, color="gray", lw=0.8, ls=":")
        ax.set_xlabel(f"epoch (binary: step 1 = 1..{e}, step 2 after the dotted line)")
        ax.set_title(title + ", mean over seeds", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


TABLE_START, TABLE_END = "<!-- study-table:start -->", "<!-- study-table:end -->"


def write_report(study: Study, results: Path, names: list[str], seeds: list[int],
                 results_md: Path | None) -> dict[str, Any]:
    in_chans, classes, n_train, n_test = _data_counts(study)
    agg = collect(study, results, names, seeds, in_chans, classes, n_train, n_test)
    _write_json(results / "fashion_mnist.json", agg)
    table = markdown_table(agg)
    (results / "fashion_mnist_table.md").write_text(table + "\n")
    if any(v["top1"] for v in agg["variants"].values()):
        plot_accuracy_vs_ops(agg, results / "fashion_mnist_accuracy_vs_ops.png")
        plot_curves(agg, results / "fashion_mnist_curves.png")
    if results_md is not None and results_md.is_file():
        text = results_md.read_text()
        if TABLE_START in text and TABLE_END in text:
            before, rest = text.split(TABLE_START, 1)
            after = rest.split(TABLE_END, 1)[1]
            results_md.write_text(f"{before}{TABLE_START}\n{table}\n{TABLE_END}{after}")
    print(table, flush=True)
    return agg


# --- command line ---------------------------------------------------------------------------
def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t]


def _opt_int(text: str) -> int | None:
    return None if text.lower() in ("none", "all", "0") else int(text)


def _lr_mult(text: str) -> tuple[str, float]:
    """``PATTERN=FACTOR`` (the last ``=`` splits; FACTOR a finite number > 0)."""
    pattern, sep, factor = text.rpartition("=")
    try:
        value = float(factor)
    except ValueError:
        value = math.nan
    if not sep or not pattern or not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: expected PATTERN=FACTOR with a factor > 0")
    return pattern, value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = Study()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=d.dataset, choices=["idx", "folder", "digits"])
    p.add_argument("--root", default=None,
                   help=f"idx: folder with the four idx files, gzip or not (default "
                        f"{FASHION_MNIST}); folder: has train/ and val/")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help=f"comma-separated, from {', '.join(VARIANTS)}")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ...)")
    p.add_argument("--seed-list", type=_ints, default=None,
                   help="only these seeds, e.g. 1,2 (default: 0 .. --seeds - 1)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="epochs per step")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--lr-mult", type=_lr_mult, action="append", default=None,
                   metavar="PATTERN=FACTOR",
                   help="train the parameters whose names match the glob PATTERN at lr x FACTOR "
                        "(repeatable), e.g. 'network.[135].proj.weight=3': the downsamplings' "
                        "convolutions; a pattern that matches nothing in a model is an error")
    p.add_argument("--label-weight", type=float, default=d.label_weight)
    p.add_argument("--no-teacher", action="store_true", help="binary variants on labels only")
    p.add_argument("--teacher-from", nargs=2, metavar=("RESULTS", "WORK"), default=None,
                   help="distil from another study's teacher (its result file in RESULTS, its "
                        "weights in WORK) instead of this study's own: for checks that change "
                        "one setting, e.g. --lr, and keep the teacher")
    p.add_argument("--image-size", type=_opt_int, default=d.image_size,
                   help="training and test resolution (none: the data's own)")
    p.add_argument("--stem-stride", type=int, default=d.stem_stride, help="BiMLP / Wave-MLP")
    p.add_argument("--reactnet-stem-stride", type=int, default=d.reactnet_stem_stride)
    p.add_argument("--depths", type=_ints, default=d.depths, help="BiMLP / Wave-MLP, e.g. 1,1,2,1")
    p.add_argument("--dims", type=_ints, default=d.dims, help="e.g. 32,64,96,128")
    p.add_argument("--mlp-ratio", type=float, default=d.mlp_ratio)
    p.add_argument("--train-limit", type=_opt_int, default=d.train_limit,
                   help="use only N training images, a seeded class-stratified subset "
                        "(bimlp.data.stratified_subset; none: all)")
    p.add_argument("--val-holdout", type=int, default=0,
                   help="evaluate on N seeded training images held out of training instead of "
                        "the test set (learning-rate checks; idx only)")
    p.add_argument("--max-steps", type=int, default=None, help="batches per epoch (smoke test)")
    p.add_argument("--loader", default=d.loader, choices=["batches", "samples"],
                   help="batches: augment whole batches on the device (digits / idx); "
                        "samples: the per-sample DataLoader (any data set)")
    p.add_argument("--probe", action="store_true",
                   help="results and work files under probe/ names (never mixed with the study)")
    p.add_argument("--results", default=None,
                   help=f"folder of the result files and the aggregate (default {RESULTS}; "
                        "with --probe, the work folder)")
    p.add_argument("--work", default=str(REPO / "runs" / "fashion_mnist"),
                   help="weights and checkpoints (never committed)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (per run)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the student and the teacher (worth it on a GPU)")
    p.add_argument("--reference-path", action="store_true",
                   help="train with the plain reference modules instead of the fast path "
                        "(the same function, slower)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers per run")
    p.add_argument("--checkpoint-steps", type=int, default=Execution.checkpoint_steps,
                   help="also checkpoint every N optimizer steps inside an epoch, so that a "
                        "killed run resumes there (0: at epoch ends only)")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at a time, each in its own process (a GPU has room for many)")
    p.add_argument("--deadline-s", type=float, default=None,
                   help="with --jobs > 1: stop every run still going after this many seconds "
                        "(they resume from their last checkpoint next time)")
    p.add_argument("--stagger-s", type=float, default=0.0,
                   help="with --jobs > 1 and --compile: start a variant's other seeds this long "
                        "after its first (they reuse its compiled graphs)")
    p.add_argument("--no-report", action="store_true",
                   help="skip the aggregate, table and charts (the parallel runs' children)")
    p.add_argument("--commit", action="store_true",
                   help="git-commit each finished run's result file (only that file)")
    p.add_argument("--teacher-only", action="store_true",
                   help="only make sure the teacher's weights are in --work (retrained from its "
                        "seed if missing, e.g. on a fresh machine), then stop; for --teacher-from")
    p.add_argument("--report-only", action="store_true",
                   help="only rebuild the json, the table, the charts and the RESULTS.md table")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = args.root
    if root is None and args.dataset == "idx":
        root = FASHION_MNIST
    study = Study(
        dataset=args.dataset, root=root, image_size=args.image_size,
        stem_stride=args.stem_stride, reactnet_stem_stride=args.reactnet_stem_stride,
        train_limit=args.train_limit, val_holdout=args.val_holdout, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, label_weight=args.label_weight,
        lr_mult=dict(args.lr_mult) if args.lr_mult else None,
        teacher=not args.no_teacher, depths=args.depths, dims=args.dims,
        mlp_ratio=args.mlp_ratio, max_steps=args.max_steps,
        loader=args.loader if args.dataset != "folder" else "samples",
    )
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    if args.seeds < 1:
        raise SystemExit("--seeds must be at least 1")
    seeds = list(range(args.seeds)) if args.seed_list is None else args.seed_list
    if not seeds or min(seeds) < 0:
        raise SystemExit(f"--seed-list needs seeds >= 0, got {args.seed_list}")
    if args.checkpoint_steps < 0:
        raise SystemExit(f"--checkpoint-steps must be >= 0 (0: at epoch ends only), got "
                         f"{args.checkpoint_steps}")
    ex = Execution(device=args.device, threads=args.threads, compile=args.compile,
                   fast_path=not args.reference_path,
                   workers=args.workers, checkpoint_steps=args.checkpoint_steps)
    work = Path(args.work)
    if args.probe:
        work = work.with_name(work.name + "_probe")
    results = Path(args.results) if args.results else (work if args.probe else RESULTS)
    results.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    failures: list[str] = []
    teacher = None
    if args.teacher_from and not args.report_only:
        teacher = borrowed_teacher(study, Path(args.teacher_from[0]), Path(args.teacher_from[1]))
    if args.teacher_only:
        if not study.teacher:
            raise SystemExit("--teacher-only with --no-teacher: this study has no teacher")
        mine = ensure_teacher(study, work, results, holdout_root(study, work), ex, args.commit)
        print(f"teacher: {mine['variant']} seed {mine['seed']}, top-1 {100 * mine['top1']:.2f}%, "
              f"sha256 {mine['sha256'][:16]}, weights {mine['weights']}", flush=True)
        return 0
    if args.report_only:
        pass
    elif args.jobs > 1:
        failures = run_parallel(study, work, results, names, seeds, ex, args.commit, args.jobs,
                                args.deadline_s, list(sys.argv[1:] if argv is None else argv),
                                args.stagger_s, borrowed=teacher is not None)
    else:
        failures = run_study(study, work, results, names, seeds, ex, args.commit, teacher)
    if not args.no_report:
        results_md = REPO / "docs" / "RESULTS.md" if results == RESULTS else None
        write_report(study, results, names, seeds, results_md)
    print(f"wall time of this invocation: {time.perf_counter() - start:.0f} s", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
