"""experiments/ablation.py end to end on a tiny synthetic idx folder: 3 variants, 1 seed.

The study script is a script, not part of the package, so it runs as a subprocess exactly as a
user runs it. Sizes are minimal (16x16 images, 2 batches per epoch, a two-stage MLP), so this
checks the plumbing -- teacher first, two steps with distillation, result files, aggregate JSON,
table, charts, resume, settings check, held-out split -- not the accuracy.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "ablation.py"


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """MNIST idx format: 0, 0, type code 0x08 (uint8), ndim, big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    raw = header + array.astype(np.uint8).tobytes()
    if compress:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def make_idx_folder(root: Path, n_train: int = 64, n_test: int = 40, size: int = 16) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir()
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 60, size=(n, size, size))
        for i, c in enumerate(labels):  # a bright bar whose row encodes the class
            images[i, c + 2, 2:-2] = 250
        write_idx(root / f"{split}-images-idx3-ubyte", images, compress=split == "train")
        write_idx(root / f"{split}-labels-idx1-ubyte", labels)
    return root


def run_script(tmp: Path, root: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, str(SCRIPT), "--results", str(tmp / "results"), "--work",
        str(tmp / "work"), "--dataset", "idx", "--root", str(root),
        "--variants", "naive,reactnet_a,wavemlp_fp", "--seeds", "1", "--epochs", "1",
        "--max-steps", "2", "--batch-size", "16", "--depths", "1,1", "--dims", "8,16",
        "--image-size", "16", "--threads", "1", *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_study_end_to_end(tmp_path: Path) -> None:
    root = make_idx_folder(tmp_path / "idx")
    proc = run_script(tmp_path, root)
    assert "3 run(s) to do" in proc.stdout
    # the teacher first, then the headline order (naive before reactnet_a)
    order = [line.split("] done")[0].split()[-3] for line in proc.stdout.splitlines()
             if "] done:" in line]
    assert order == ["wavemlp_fp", "naive", "reactnet_a"]

    results = tmp_path / "results"
    agg = json.loads((results / "fashion_mnist.json").read_text())
    assert {"dataset", "train_images", "test_images", "image_size", "stem_stride",
            "epochs_per_step", "variants"} <= set(agg)
    # --max-steps 2 x batch 16 caps the training images used
    assert (agg["train_images"], agg["test_images"], agg["image_size"]) == (32, 40, 16)
    assert agg["stem_stride"] == 2 and agg["epochs_per_step"] == 1
    assert list(agg["variants"]) == ["wavemlp_fp", "naive", "reactnet_a"]  # headline order
    for name, v in agg["variants"].items():
        assert len(v["top1"]) == 1 and 0.0 <= v["top1"][0] <= 1.0 and v["complete"]
        assert {"params", "bops", "flops", "ops"} <= set(v)
        run = json.loads((results / "runs" / f"{name}__seed0.json").read_text())
        assert run["test_images"] == 40 and run["top1"] == v["top1"][0]
        # binary: 2 steps x 1 epoch; full precision: both steps' budget in one run
        assert [len(s["curve"]) for s in run["steps"]] == ([2] if name == "wavemlp_fp" else [1, 1])
        assert "weights" not in json.dumps(run)  # the small file names no weights
    assert agg["variants"]["naive"]["bops"] > 0 and agg["variants"]["wavemlp_fp"]["bops"] == 0
    assert agg["variants"]["reactnet_a"]["stem_stride"] == 1
    run = json.loads((results / "runs" / "naive__seed0.json").read_text())
    assert run["teacher"]["variant"] == "wavemlp_fp" and len(run["teacher"]["sha256"]) == 64
    table = (results / "fashion_mnist_table.md").read_text()
    assert table.startswith("| variant | MBB | Uni-shortcut | downsample | top-1 % (mean ± std)")
    for png in ("fashion_mnist_accuracy_vs_ops.png", "fashion_mnist_curves.png"):
        assert (results / png).stat().st_size > 0

    # a work folder's finished steps are reused only by the same settings, even when the result
    # files are elsewhere
    other = run_script(tmp_path, root, "--lr", "0.5", "--results", str(tmp_path / "r2"),
                       check=False)
    assert other.returncode != 0 and "this work folder holds a run with other settings" in other.stderr

    # resumable from the result files alone (a fresh clone: no work folder, no weights)
    shutil.rmtree(tmp_path / "work")
    again = run_script(tmp_path, root)
    assert "0 run(s) to do" in again.stdout
    # other settings against the same result files are refused, naming the file and the key
    other = run_script(tmp_path, root, "--lr", "0.5", check=False)
    assert other.returncode != 0 and "__seed0.json was made with other settings" in other.stderr
    assert "lr: 0.001 there, 0.5 here" in other.stderr


def test_seeded_holdout_split(tmp_path: Path) -> None:
    root = make_idx_folder(tmp_path / "idx")
    run_script(tmp_path, root, "--variants", "wavemlp_fp", "--val-holdout", "24", "--probe")
    probe = tmp_path / "results"
    run = json.loads((probe / "runs" / "wavemlp_fp__seed0.json").read_text())
    assert run["eval_set"] == "holdout" and run["test_images"] == 24
    held = tmp_path / "work_probe" / "holdout24"
    assert (held / "train-images-idx3-ubyte").stat().st_size == 16 + 40 * 16 * 16


def test_parallel_runs_match_sequential(tmp_path: Path) -> None:
    """--jobs 2: the teacher first, then the binary run in a child process; the result files
    equal a sequential run's (same seeds, same data order: the runs are deterministic)."""
    root = make_idx_folder(tmp_path / "idx")
    seq = tmp_path / "seq"
    seq.mkdir()
    run_script(seq, root, "--variants", "wavemlp_fp,naive", "--loader", "samples")
    par = tmp_path / "par"
    par.mkdir()
    proc = run_script(par, root, "--variants", "wavemlp_fp,naive", "--jobs", "2", "--workers", "1",
                      "--loader", "samples")
    assert "2 run(s) to do, 2 at a time" in proc.stdout
    started = [line.split("started ")[1].split(" (")[0] for line in proc.stdout.splitlines()
               if "started " in line]
    assert started == ["wavemlp_fp seed 0", "naive seed 0"]  # naive waited for the teacher
    for name in ("wavemlp_fp", "naive"):
        a = json.loads((seq / "results" / "runs" / f"{name}__seed0.json").read_text())
        b = json.loads((par / "results" / "runs" / f"{name}__seed0.json").read_text())
        assert b["execution"]["workers"] == 1 and a["execution"]["workers"] == 0
        assert a["top1"] == b["top1"] and a["test_loss"] == b["test_loss"]
        assert [s["curve"][-1]["train_loss"] for s in a["steps"]] == \
               [s["curve"][-1]["train_loss"] for s in b["steps"]]
    agg = json.loads((par / "results" / "fashion_mnist.json").read_text())
    assert all(v["complete"] for v in agg["variants"].values())

    # a fresh machine: the teacher's result file is committed but its weights are gone; it is
    # retrained before any child starts, with every thread (nothing else can run meanwhile)
    shutil.rmtree(par / "work")
    (par / "results" / "runs" / "naive__seed0.json").unlink()
    proc = run_script(par, root, "--variants", "wavemlp_fp,naive", "--jobs", "2",
                      "--loader", "samples")
    assert "training it again" in proc.stdout and "1 run(s) to do, 2 at a time" in proc.stdout
    retrained = json.loads((par / "work" / "runs" / "wavemlp_fp__seed0.json").read_text())
    assert retrained["threads"] == 2  # --threads 1 x --jobs 2
    rerun = json.loads((par / "results" / "runs" / "naive__seed0.json").read_text())
    assert rerun["teacher"]["sha256"] == hashlib.sha256(
        (par / "work" / "runs" / "wavemlp_fp" / "seed0" / "step1" / "model.safetensors")
        .read_bytes()).hexdigest()


def test_report_names_each_training_of_the_teacher(tmp_path: Path) -> None:
    """Seeds that distilled from different trainings of the teacher (a retrain on a new machine)
    are listed under the table by the hash of the teacher's weights; one teacher adds no note."""
    root = make_idx_folder(tmp_path / "idx")
    run_script(tmp_path, root, "--variants", "wavemlp_fp,naive")
    table = (tmp_path / "results" / "fashion_mnist_table.md").read_text()
    assert "trainings of the same teacher" not in table
    runs = tmp_path / "results" / "runs"
    other = json.loads((runs / "naive__seed0.json").read_text())
    first = other["teacher"]["tensors_sha256"]

    def report_with_seed1(teacher: dict) -> str:
        (runs / "naive__seed1.json").write_text(json.dumps({**other, "seed": 1,
                                                            "teacher": teacher}))
        run_script(tmp_path, root, "--variants", "wavemlp_fp,naive", "--seeds", "2",
                   "--report-only")
        return (tmp_path / "results" / "fashion_mnist_table.md").read_text()

    # the same tensors in a file that hashes differently (metadata in another order): one teacher
    assert "trainings of the same teacher" not in report_with_seed1(
        {**other["teacher"], "sha256": "e" * 64})
    table = report_with_seed1({**other["teacher"], "sha256": "e" * 64,
                               "tensors_sha256": "f" * 64, "top1": 0.5})
    assert "distilled from 2 trainings of the same teacher" in table
    assert f"sha256 {first[:12]}" in table and "naive 0" in table
    assert "sha256 ffffffffffff, top-1 50.00 %: naive 1" in table
    agg = json.loads((tmp_path / "results" / "fashion_mnist.json").read_text())
    assert [t["run_seed"] for t in agg["variants"]["naive"]["teachers"]] == [0, 1]
    # result files from before the tensors' hash are told apart by the file's
    old = {k: v for k, v in other["teacher"].items() if k != "tensors_sha256"}
    assert "distilled from 2" in report_with_seed1({**old, "sha256": "d" * 64})


def load_script(path: Path = SCRIPT):
    """A script of experiments/ (by default ablation.py) as a module, for its functions."""
    spec = importlib.util.spec_from_file_location(f"{path.stem}_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_lr_mult_reaches_every_step_and_keeps_older_result_files(tmp_path: Path) -> None:
    """``--lr-mult PATTERN=FACTOR`` goes into the study (so its result files say so) and into the
    trainer's ``optim.lr_mult`` of both steps; without it the recipes are the ones of every earlier
    run, and result files written before the option existed still count as the same study."""
    from bimlp.train.config import config_from_dict

    study_mod = load_script()
    args = study_mod.parse_args(["--lr-mult", "network.[135].proj.weight=3", "--lr-mult", "x=0.5"])
    assert args.lr_mult == [("network.[135].proj.weight", 3.0), ("x", 0.5)]
    study = study_mod.Study(lr_mult=dict(args.lr_mult))
    ex = study_mod.Execution()
    for step in (1, 2):
        recipe = study_mod._recipe(study, "naive+ds", 0, tmp_path, step, None, None, ex)
        cfg = config_from_dict(recipe)
        assert cfg.optim.lr_mult == {"network.[135].proj.weight": 3.0, "x": 0.5}
    plain = study_mod._recipe(study_mod.Study(), "naive+ds", 0, tmp_path, 1, None, None, ex)
    assert "lr_mult" not in plain["optim"]
    # a result file from before the option: its study has no lr_mult key
    old = {k: v for k, v in dataclasses.asdict(study_mod.Study()).items() if k != "lr_mult"}
    path = study_mod.result_path(tmp_path, "naive", 0)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"variant": "naive", "seed": 0, "study": old}))
    assert study_mod.read_result(tmp_path, "naive", 0, study_mod.Study())["seed"] == 0
    with pytest.raises(SystemExit, match="lr_mult: None there"):
        study_mod.read_result(tmp_path, "naive", 0, study)
    for bad in ("3", "=3", "x=0", "x=fast", "x=nan"):
        with pytest.raises(SystemExit):  # argparse: exit 2, the value named on stderr
            study_mod.parse_args(["--lr-mult", bad])


def test_teacher_hash_is_the_tensors_not_the_file(tmp_path: Path) -> None:
    """The teacher's ``tensors_sha256`` depends on the tensors only: the same tensors written with
    their metadata in another order hash alike (their files need not), one changed value not."""
    import torch
    from safetensors.torch import save_file

    study = load_script()
    tensors = {"b.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3),
               "a.bias": torch.zeros(3), "c.count": torch.tensor(7)}
    save_file(tensors, tmp_path / "one.safetensors", metadata={"x": "1", "y": "2"})
    save_file(dict(reversed(tensors.items())), tmp_path / "two.safetensors",
              metadata={"y": "2", "x": "1", "z": "extra"})
    one = study._tensors_sha256(tmp_path / "one.safetensors")
    assert one == study._tensors_sha256(tmp_path / "two.safetensors")
    changed = {**tensors, "a.bias": torch.tensor([0.0, 0.0, 1e-7])}
    save_file(changed, tmp_path / "three.safetensors", metadata={"x": "1", "y": "2"})
    assert study._tensors_sha256(tmp_path / "three.safetensors") != one
    # a name moved to another tensor of the same shape and dtype changes it too
    swapped = {"b.weight": tensors["b.weight"], "a.bias": torch.zeros(3), "d.count": torch.tensor(7)}
    save_file(swapped, tmp_path / "four.safetensors")
    assert study._tensors_sha256(tmp_path / "four.safetensors") != one


def test_teacher_from_another_study(tmp_path: Path) -> None:
    """--teacher-from: a check that changes one setting (here the learning rate) distils from
    the first study's teacher -- the same weights, recorded by hash -- and trains none itself."""
    root = make_idx_folder(tmp_path / "idx")
    run_script(tmp_path, root, "--variants", "wavemlp_fp")
    teacher = json.loads((tmp_path / "results" / "runs" / "wavemlp_fp__seed0.json").read_text())
    borrow = ["--teacher-from", str(tmp_path / "results"), str(tmp_path / "work")]
    check = tmp_path / "check"
    check.mkdir()
    proc = run_script(check, root, "--variants", "naive", "--lr", "0.002", *borrow)
    assert "1 run(s) to do" in proc.stdout
    run = json.loads((check / "results" / "runs" / "naive__seed0.json").read_text())
    assert run["study"]["lr"] == 0.002
    weights = tmp_path / "work" / "runs" / "wavemlp_fp" / "seed0" / "step1" / "model.safetensors"
    assert run["teacher"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert run["teacher"]["top1"] == teacher["top1"]
    assert not (check / "work" / "runs" / "wavemlp_fp").exists()  # no teacher of its own

    # a fresh machine: the weights are gone; the check names the way back, --teacher-only
    # retrains them from the committed result file (and nothing else), then the check runs
    kept = weights.with_name("kept.safetensors")
    weights.rename(kept)
    again = tmp_path / "again"
    again.mkdir()
    proc = run_script(again, root, "--variants", "naive", "--lr", "0.002", *borrow, check=False)
    assert proc.returncode != 0 and "--teacher-only" in proc.stderr and str(weights) in proc.stderr
    proc = run_script(tmp_path, root, "--teacher-only")
    assert "training it again from its seed" in proc.stdout and weights.is_file()
    # the work folder kept the finished step's last.pt: the same tensors, bit for bit (not the
    # same file: safetensors writes the metadata's keys in no fixed order)
    from safetensors.torch import load_file

    before, after = load_file(kept), load_file(weights)
    assert before.keys() == after.keys()
    assert all(before[k].equal(after[k]) for k in before)
    assert not (tmp_path / "work" / "runs" / "naive").exists()  # the teacher only
    run_script(again, root, "--variants", "naive", "--lr", "0.002", *borrow)
    second = json.loads((again / "results" / "runs" / "naive__seed0.json").read_text())
    assert second["teacher"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    # ... and the tensors' hash says so: the first check's teacher, whatever the file's hash
    assert second["teacher"]["tensors_sha256"] == run["teacher"]["tensors_sha256"]

    # a teacher for other students is refused, naming the setting; so is a missing one
    bad = tmp_path / "bad"
    bad.mkdir()
    proc = run_script(bad, root, "--variants", "naive", "--dims", "8,24", *borrow, check=False)
    assert proc.returncode != 0 and "dims: [8, 16] there, [8, 24] here" in proc.stderr
    proc = run_script(bad, root, "--variants", "naive", "--teacher-from", str(bad), str(bad),
                      check=False)
    assert proc.returncode != 0 and "no teacher result file" in proc.stderr


def test_weight_turn_rebuilds_the_initial_weights(tmp_path: Path) -> None:
    """experiments/weight_turn.py rebuilds a run's initial weights from its config and seed: after
    two steps at a negligible rate (the matched conv at 3x it, through --lr-mult) the downsampling
    convolution has turned by almost nothing from them (other weights would be ~90 degrees away),
    and its initial RMS is PyTorch's default 1 / sqrt(3 fan_in)."""
    root = make_idx_folder(tmp_path / "idx")
    run_script(tmp_path, root, "--variants", "naive+ds", "--no-teacher", "--lr", "1e-9",
               "--lr-mult", "network.[135].proj.weight=3")
    run = tmp_path / "work" / "runs" / "naive+ds" / "seed0"
    cfg = (run / "step1" / "config.yaml").read_text()
    assert "network.[135].proj.weight: 3.0" in cfg  # the multiplier reached the trainer
    turn = load_script(SCRIPT.with_name("weight_turn.py"))
    assert turn.main([str(run), "--json", str(tmp_path / "turn.json")]) == 0
    (row,) = json.loads((tmp_path / "turn.json").read_text())["rows"]
    assert row["name"] == "network.1.proj.weight" and row["shape"] == [16, 8, 1, 1]
    assert abs(row["rms_start"] / (3 * 8) ** -0.5 - 1) < 0.15
    assert row["turn_start_step1"] < 0.01 and row["turn_start_step2"] < 0.01
    with pytest.raises(SystemExit, match="no weight matches 'nothing.*'"):
        turn.main([str(run), "--pattern", "nothing.*"])


def test_checkpoint_steps_reach_the_trainer_and_not_the_study(tmp_path: Path) -> None:
    """``--checkpoint-steps N`` is how the runs execute (recorded under ``execution``), not a
    setting of the study: it reaches the trainer's ``run.checkpoint_steps`` of both steps and
    leaves the study (and so the reuse of earlier result files and work folders) unchanged."""
    from bimlp.train.config import config_from_dict

    study_mod = load_script()
    assert study_mod.parse_args([]).checkpoint_steps == study_mod.Execution.checkpoint_steps == 50
    ex = study_mod.Execution(checkpoint_steps=7)
    for step in (1, 2):
        recipe = study_mod._recipe(study_mod.Study(), "bimlp", 0, tmp_path, step, None, None, ex)
        assert config_from_dict(recipe).run.checkpoint_steps == 7
    assert "checkpoint_steps" not in dataclasses.asdict(study_mod.Study())
    with pytest.raises(SystemExit, match="--checkpoint-steps must be >= 0"):
        study_mod.main(["--checkpoint-steps", "-1"])
