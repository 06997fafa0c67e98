"""torchrun on the CPU (gloo): two processes == one process accumulating the same half-batches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from bimlp.checkpoint import read_weights
from bimlp.train.state import load_training_checkpoint

_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _run(args, env, timeout=600, check=True):
    """Run a command in its own process group; on timeout kill the whole group (torchrun's
    workers too) and fail."""
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{' '.join(map(str, args))}: no result after {timeout} s (hung)")
    if check:
        assert proc.returncode == 0, out[-3000:] + err[-3000:]
        return out
    return proc.returncode, out + err


def test_torchrun_two_processes_equal_one_process_accumulating(tmp_path, recipe, sub_env):
    # 8 images per micro-batch; global batch 16 either way: 2 processes x 1, or 1 x 2 micro-batches;
    # a checkpoint after every step (every process's sums gathered inside the epoch) changes nothing
    common = dict(data={"train_limit": 64, "val_limit": 37, "batch_size": 8},
                  optim={"epochs": 2}, run={"seed": 5, "checkpoint_steps": 1})
    ddp, single = tmp_path / "ddp.yaml", tmp_path / "single.yaml"
    ddp.write_text(yaml.safe_dump(recipe(tmp_path / "ddp", 1, **common)))
    one = recipe(tmp_path / "single", 1, **common)
    one["optim"]["accum_steps"] = 2
    single.write_text(yaml.safe_dump(one))

    out = _run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", "2", "-m", "bimlp.cli", "train", "--config", str(ddp)],
               sub_env)
    assert "2 process(es) on cpu, global batch 16" in out
    assert out.count("test accuracy:") == 1  # only rank 0 prints
    _run([sys.executable, "-m", "bimlp.cli", "train", "--config", str(single)], sub_env)

    a = read_weights(tmp_path / "ddp" / "step1" / "model.safetensors")[0]
    b = read_weights(tmp_path / "single" / "step1" / "model.safetensors")[0]
    assert a.keys() == b.keys()
    params = [k for k in a if not k.endswith(_BUFFERS)]
    assert len(params) > 50
    for k in params:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
    # the two runs really trained: weights moved away from the shared initialisation
    assert not torch.equal(a["head.weight"], torch.zeros_like(a["head.weight"]))
    ca = load_training_checkpoint(tmp_path / "ddp" / "step1" / "last.pt")
    cb = load_training_checkpoint(tmp_path / "single" / "step1" / "last.pt")
    assert ca["scheduler"]["last_epoch"] == cb["scheduler"]["last_epoch"] == 8
    assert len(ca["rng"]) == 2 and len(cb["rng"]) == 1  # one RNG state per process
    # evaluation scored every held-out image once across the two processes (accuracies differ:
    # BatchNorm running statistics are per replica, and rank 0's are the ones kept)
    assert ca["history"][-1]["val_images"] == cb["history"][-1]["val_images"] == 37


def test_torchrun_rank_whose_micro_batch_is_all_undecodable_does_not_hang(
    tmp_path, recipe, sub_env, image_folder
):
    # The two files rank 0 draws at step 0 are text: before, rank 0 skipped the step, never
    # joined the gradient all-reduce, and both processes waited forever.
    from bimlp.data import GlobalBatchSampler, ImageFolderDataset

    root = image_folder(tmp_path / "images")
    train = ImageFolderDataset(root / "train")
    first = next(iter(GlobalBatchSampler(len(train), 2, world=2, rank=0, seed=3)))
    for _, index in first:
        Path(train.samples[index][0]).write_text("not an image")
    cfg = recipe(tmp_path / "run", 1, data={"dataset": "folder", "root": str(root),
                                            "batch_size": 2, "image_size": 16},
                 model={"depths": [1, 1], "dims": [16, 32]},
                 optim={"epochs": 1}, run={"seed": 3, "dist_timeout": 60})
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = _run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", "2", "-m", "bimlp.cli", "train", "--config", str(path)],
               sub_env, timeout=240)
    assert "skipped 2 undecodable image(s)" in out
    assert "test accuracy:" in out
    ckpt = load_training_checkpoint(tmp_path / "run" / "step1" / "last.pt")
    assert ckpt["scheduler"]["last_epoch"] == 4  # 16 images / global batch 4: every step ran
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


_DESYNC = """
import time
from bimlp.train.distributed import all_reduce_sum, collective_timeouts, setup_distributed
env = setup_distributed("cpu", timeout=3)
with collective_timeouts(env, 3):
    if env.rank == 0:
        all_reduce_sum([1.0], env)  # rank 1 never joins
    else:
        time.sleep(10)
"""


def test_a_collective_the_others_skip_fails_within_the_timeout(tmp_path, sub_env):
    script = tmp_path / "desync.py"
    script.write_text(_DESYNC)
    start = time.monotonic()
    rc, out = _run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc_per_node", "2", str(script)], sub_env, timeout=120, check=False)
    assert rc != 0
    assert time.monotonic() - start < 60  # not torch's default 30 minutes
    assert "DistributedTimeout: process 0 of 2 waited more than 3 s (run.dist_timeout)" in out
