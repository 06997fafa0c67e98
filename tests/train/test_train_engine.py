"""End-to-end training on the built-in digits: learning, the two steps, resume, distillation."""

from __future__ import annotations

import csv
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

import bimlp
from bimlp.checkpoint import CheckpointError, read_weights, save_weights
from bimlp.cli import main as cli
from bimlp.train.config import ConfigError, config_from_dict
from bimlp.train.engine import train
from bimlp.train.state import load_training_checkpoint


def test_both_steps_learn_and_step2_loads_step1_strictly(tmp_path, recipe, capsys):
    one = train(config_from_dict(recipe(tmp_path, 1)))
    assert one.final["val_top1"] > 50.0  # chance is 10 %
    two_cfg = config_from_dict(recipe(tmp_path, 2, optim={"epochs": 2}))
    assert two_cfg.model.init_from == str(one.weights)
    two = train(two_cfg)
    assert two.final["val_top1"] > 50.0
    out = capsys.readouterr().out
    assert "step 1 (binary activations, real weights)" in out
    assert "step 2 (binary activations and weights)" in out

    # One model, two configurations: identical parameter names; step 2's quantizers are on.
    s1, meta1, _ = read_weights(one.weights)
    s2, meta2, _ = read_weights(two.weights)
    assert s1.keys() == s2.keys()
    assert (meta1["binary_weights"], meta2["binary_weights"]) == (False, True)
    # step 2 started from step 1: a strict load of step 1's tensors
    ckpt = load_training_checkpoint(tmp_path / "step2" / "last.pt")
    assert ckpt["config"]["model"]["init_from"] == str(one.weights)
    assert ckpt["config"]["model"]["num_classes"] == 10  # resolved from the data

    # the saved files, and bimlp eval on them reproduces the test accuracy
    for name in ("config.yaml", "metrics.csv", "curves.png", "last.pt", "model.safetensors"):
        assert (tmp_path / "step2" / name).is_file(), name
    rows = list(csv.DictReader((tmp_path / "step2" / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert yaml.safe_load((tmp_path / "step2" / "config.yaml").read_text())["model"][
        "binary_weights"] is True
    assert cli(["eval", "--model", "bimlp_s", "--checkpoint", str(two.weights),
                "--dataset", "digits", "--workers", "0", "--batch-size", "64"]) == 0
    out = capsys.readouterr().out
    assert f"top-1 {two.final['val_top1']:.3f}%" in out
    assert "(360 images scored" in out


def test_best_checkpoint_and_log_file(tmp_path, recipe, capsys):
    # a rate that wanders: top-1 does not only rise, so the best epoch is not always the last
    result = train(config_from_dict(recipe(tmp_path, 1, optim={"epochs": 4, "lr": 0.3,
                                                               "schedule": "constant"})))
    rows = list(csv.DictReader((tmp_path / "step1" / "metrics.csv").open()))
    top1 = [float(r["val_top1"]) for r in rows]
    running = [max(top1[: i + 1]) for i in range(len(top1))]
    assert [float(r["best_top1"]) for r in rows] == pytest.approx(running, abs=1e-4)
    best_epoch = int(rows[-1]["best_epoch"])
    assert top1[best_epoch - 1] == max(top1) and best_epoch == 1 + top1.index(max(top1))
    assert result.final["best_top1"] == pytest.approx(max(top1), abs=1e-4)
    # best.safetensors holds that epoch's weights: evaluating it gives the best top-1
    best = tmp_path / "step1" / "best.safetensors"
    capsys.readouterr()
    assert cli(["eval", "--model", "bimlp_s", "--checkpoint", str(best), "--dataset", "digits",
                "-j", "0", "-b", "64"]) == 0
    exact = result.history[best_epoch - 1]["val_top1"]  # metrics.csv rounds to 6 digits
    assert f"top-1 {exact:.3f}%" in capsys.readouterr().out
    log = (tmp_path / "step1" / "train.log").read_text()
    assert "INFO model bimlp_s step 1" in log and "test accuracy: top-1" in log
    assert log.count("\n") >= 4 + 3  # one line per epoch and the summaries


def test_step2_refuses_weights_that_do_not_fit(tmp_path, recipe):
    other = bimlp.create_model("bimlp_s", depths=(1, 1), dims=(16, 32), num_classes=10,
                               in_chans=1, multi_branch=False)
    save_weights(other, tmp_path / "step1" / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"missing: network\.0\.0\.act1\.act\.weight"):
        train(config_from_dict(recipe(tmp_path, 2)))


def _params(path):
    return read_weights(path)[0]


def test_resume_after_a_kill_gives_the_same_weights(tmp_path, recipe, one_thread, sub_env):
    """2 epochs straight == 1 epoch, SIGKILL, --resume for the second (bit for bit, CPU)."""
    small = {"train_limit": 256}
    straight = train(config_from_dict(recipe(tmp_path / "a", 1, data=small, optim={"epochs": 2},
                                             run={"ema_decay": 0.9})))

    run_dir = tmp_path / "b" / "step1"
    cfg_file = tmp_path / "b.yaml"
    cfg_file.write_text(yaml.safe_dump(recipe(tmp_path / "b", 1, data=small,
                                              optim={"epochs": 2}, run={"ema_decay": 0.9})))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bimlp.cli", "train", "--config", str(cfg_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=sub_env,
    )
    try:  # kill it as soon as the first epoch's checkpoint exists
        deadline = time.monotonic() + 300
        while not (run_dir / "last.pt").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "run ended early"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    first = load_training_checkpoint(run_dir / "last.pt")
    assert first["epoch"] == 1 and not (run_dir / "model.safetensors").exists()

    assert cli(["train", "--resume", str(run_dir / "last.pt")]) == 0  # config from the file
    resumed = load_training_checkpoint(run_dir / "last.pt")
    assert resumed["epoch"] == 2
    a, b = _params(straight.weights), _params(run_dir / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ema_a, ema_b = _params(straight.weights.with_name("model_ema.safetensors")), _params(
        run_dir / "model_ema.safetensors")
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    assert [r["train_loss"] for r in resumed["history"]] == [
        r["train_loss"] for r in straight.history]
    # the optimizer moments continued too
    straight_ckpt = load_training_checkpoint(straight.out_dir / "last.pt")
    for sa, sb in zip(straight_ckpt["optimizer"]["state"].values(),
                      resumed["optimizer"]["state"].values(), strict=True):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"])


def test_distillation_from_a_frozen_teacher(tmp_path, recipe):
    teacher = bimlp.create_model("bimlp_s", depths=(1,), dims=(16,), num_classes=10, in_chans=1,
                                 binary_weights=False).eval()
    save_weights(teacher, tmp_path / "teacher.safetensors")
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    cfg = config_from_dict(recipe(
        tmp_path, 1, data={"train_limit": 128, "val_limit": 64}, optim={"epochs": 1},
        distill={"teacher": "bimlp_s", "teacher_checkpoint": str(tmp_path / "teacher.safetensors"),
                 "teacher_args": {"binary_weights": False}, "label_weight": 0.5},
        run={"amp": "bf16", "ema_decay": 0.99}))
    result = train(cfg)
    row = result.final
    assert row["epoch"] == 1 and row["train_loss"] > 0 and "ema_top1" in row
    assert (tmp_path / "step1" / "model_ema.safetensors").is_file()
    after = read_weights(tmp_path / "teacher.safetensors")[0]
    assert all(torch.equal(before[k], after[k]) for k in before)  # the file is untouched


def test_gradient_clipping_and_accumulation_run(tmp_path, recipe):
    cfg = config_from_dict(recipe(tmp_path, 1, data={"train_limit": 128, "val_limit": 32,
                                                     "batch_size": 16},
                                  optim={"epochs": 1, "clip_grad": 0.5, "accum_steps": 2}))
    result = train(cfg)
    assert result.final["epoch"] == 1
    ckpt = load_training_checkpoint(tmp_path / "step1" / "last.pt")
    assert ckpt["scheduler"]["last_epoch"] == 4  # 128 images / (16 x 2) per step


@pytest.mark.slow
def test_builtin_recipe_from_the_command_line(tmp_path, capsys):
    """The README's main job: `bimlp train` with no arguments (here into tmp_path)."""
    assert cli(["train", f"run.out_dir={tmp_path}", "run.progress=false"]) == 0
    out = capsys.readouterr().out
    assert "== step 2 of 2 ==" in out
    for step in ("step1", "step2"):
        row = load_training_checkpoint(tmp_path / step / "last.pt")["history"][-1]
        assert row["val_top1"] > 90.0, (step, row)


def test_fast_path_trains_like_the_reference(tmp_path, recipe):
    """run.fast_path: the same recipe, seeds and batches; the fast kernels change only rounding,
    so one epoch of each ends at nearly the same loss, and the weights load into a plain model."""
    common = dict(data={"train_limit": 256, "val_limit": 64}, optim={"epochs": 1})
    ref = train(config_from_dict(recipe(tmp_path / "ref", 1, **common)))
    fast = train(config_from_dict(recipe(tmp_path / "fast", 1, run={"fast_path": True},
                                         **common)))
    assert fast.final["train_loss"] == pytest.approx(ref.final["train_loss"], rel=2e-2)
    assert yaml.safe_load((tmp_path / "fast" / "step1" / "config.yaml").read_text())["run"][
        "fast_path"] is True
    state, meta, _ = read_weights(fast.weights)
    plain = bimlp.create_model("bimlp_s", checkpoint=str(fast.weights))
    assert not plain.fast_path and state.keys() == plain.state_dict().keys()


def test_resume_refuses_other_lr_mult_groups(tmp_path, recipe):
    """A checkpoint's optimizer state has the parameter groups of its run: resuming it with
    another ``optim.lr_mult`` (other groups) is an error naming the file, not a torch crash."""
    small = {"train_limit": 64}
    done = train(config_from_dict(recipe(tmp_path, 1, data=small, optim={"epochs": 1})))
    last = done.weights.parent / "last.pt"
    cfg = config_from_dict(recipe(tmp_path, 1, data=small, optim={
        "epochs": 2, "lr_mult": {"network.1.proj.weight": 3.0}}))
    with pytest.raises(ConfigError, match=re.escape(f"{last}: its optimizer state does not fit")):
        train(cfg, resume_from=last)


class _Stop(Exception):
    pass


def _stop_after_checkpoint(monkeypatch, at=lambda step: step > 0):
    """Make the trainer raise ``_Stop`` right after writing the ``last.pt`` whose in-epoch step
    satisfies ``at`` (default: the first one written inside an epoch), as a kill there would."""
    from bimlp.train import engine

    saved = engine.Trainer.save_checkpoint

    def save_then_stop(self, epoch, step=0, partial=None):
        saved(self, epoch, step, partial)
        if at(step):
            raise _Stop

    monkeypatch.setattr(engine.Trainer, "save_checkpoint", save_then_stop)


@pytest.mark.parametrize("accum", [1, 2])
def test_resume_inside_an_epoch_gives_the_same_run(tmp_path, recipe, monkeypatch, accum):
    """run.checkpoint_steps: a run stopped right after a checkpoint written inside its first
    epoch and resumed from it ends bit for bit where the uninterrupted run ends -- weights, EMA,
    optimizer moments and every metric but the timings."""
    small = {"train_limit": 256, "val_limit": 64, "batch_size": 32 // accum}  # 8 steps an epoch
    common = dict(data=small, optim={"epochs": 2, "accum_steps": accum},
                  run={"ema_decay": 0.9})
    straight = train(config_from_dict(recipe(tmp_path / "a", 1, **common)))

    cfg = recipe(tmp_path / "b", 1, **common)
    cfg["run"]["checkpoint_steps"] = 3
    _stop_after_checkpoint(monkeypatch)
    with pytest.raises(_Stop):
        train(config_from_dict(cfg))
    monkeypatch.undo()
    last = tmp_path / "b" / "step1" / "last.pt"
    ckpt = load_training_checkpoint(last)
    assert (ckpt["epoch"], ckpt["step"], ckpt["history"]) == (0, 3 * accum, [])
    assert ckpt["partial"][0]["seen"] == 3 * 32

    resumed = train(config_from_dict(cfg), resume_from=last)
    a, b = _params(straight.weights), _params(resumed.weights)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ema_a = _params(straight.weights.with_name("model_ema.safetensors"))
    ema_b = _params(resumed.weights.with_name("model_ema.safetensors"))
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    timings = {"train_img_s", "epoch_s"}
    for row_a, row_b in zip(straight.history, resumed.history, strict=True):
        assert {k: v for k, v in row_a.items() if k not in timings} == {
            k: v for k, v in row_b.items() if k not in timings}
    opt_a = load_training_checkpoint(straight.out_dir / "last.pt")["optimizer"]["state"]
    opt_b = load_training_checkpoint(last)["optimizer"]["state"]
    for sa, sb in zip(opt_a.values(), opt_b.values(), strict=True):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"])
        assert torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])


def test_a_checkpoint_inside_an_epoch_that_does_not_fit_is_refused(tmp_path, recipe, monkeypatch):
    """A ``last.pt`` written inside an epoch names a batch of that epoch: resuming it with other
    data (another epoch length), another accumulation, or without its running sums is a
    CheckpointError naming the file, and the file stays as it was."""
    small = {"train_limit": 256}
    cfg = recipe(tmp_path, 1, data=small, optim={"epochs": 1})
    cfg["run"]["checkpoint_steps"] = 2
    _stop_after_checkpoint(monkeypatch, at=lambda step: step == 6)
    with pytest.raises(_Stop):
        train(config_from_dict(cfg))
    monkeypatch.undo()
    last = tmp_path / "step1" / "last.pt"
    before = last.read_bytes()

    shorter = recipe(tmp_path, 1, data={"train_limit": 160}, optim={"epochs": 1})  # 5 steps
    with pytest.raises(CheckpointError, match=r"last\.pt: 'step' 6 is not a resumable point"):
        train(config_from_dict(shorter), resume_from=last)
    accum = recipe(tmp_path, 1, data={**small, "batch_size": 8},
                   optim={"epochs": 1, "accum_steps": 4})  # 32 micro-batches, steps of 4
    with pytest.raises(CheckpointError, match=r"'step' 6 is not a resumable point"):
        train(config_from_dict(accum), resume_from=last)
    assert last.read_bytes() == before

    ckpt = load_training_checkpoint(last)
    negative = {**ckpt["partial"][0], "seen": -32}
    for i, partial in enumerate(([{"loss_sum": 1.0}], [negative], None)):
        broken = tmp_path / f"broken{i}" / "last.pt"
        broken.parent.mkdir()
        torch.save({**ckpt, "partial": partial}, broken)
        other = recipe(tmp_path / f"broken{i}", 1, data=small, optim={"epochs": 1})
        with pytest.raises(CheckpointError, match=rf"broken{i}/last\.pt: written inside epoch 1 "
                                                  r"but its 'partial' sums are missing or malformed"):
            train(config_from_dict(other), resume_from=broken)


def test_checkpoint_steps_must_be_a_count():
    from bimlp.train.config import validate_config

    for bad in (-1, 1.5):
        cfg = config_from_dict({"run": {"checkpoint_steps": 0}})
        cfg.run.checkpoint_steps = bad
        with pytest.raises(ConfigError, match=r"run\.checkpoint_steps must be an integer >= 0"):
            validate_config(cfg)
