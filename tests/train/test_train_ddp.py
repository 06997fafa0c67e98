"""torchrun on the CPU (gloo): two processes == one process accumulating the same half-batches."""

from __future__ import annotations

import subprocess
import sys

import torch
import yaml

from bimlp.checkpoint import read_weights
from bimlp.train.state import load_training_checkpoint

_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _run(args, env, timeout=600):
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_torchrun_two_processes_equal_one_process_accumulating(tmp_path, recipe, sub_env):
    # 8 images per micro-batch; global batch 16 either way: 2 processes x 1, or 1 x 2 micro-batches
    common = dict(data={"train_limit": 64, "val_limit": 37, "batch_size": 8},
                  optim={"epochs": 2}, run={"seed": 5})
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
