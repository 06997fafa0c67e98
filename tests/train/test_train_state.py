"""Training checkpoints: atomic writes that survive a kill, loads that unpickle nothing foreign."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from bimlp.checkpoint import CheckpointError
from bimlp.train.state import (
    TRAIN_FORMAT,
    atomic_torch_save,
    load_training_checkpoint,
    rng_state,
    set_rng_state,
)


def test_atomic_save_replaces_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "sub" / "last.pt"
    atomic_torch_save({"format": TRAIN_FORMAT, "epoch": 1}, path)
    atomic_torch_save({"format": TRAIN_FORMAT, "epoch": 2}, path)
    assert load_training_checkpoint(path)["epoch"] == 2
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]


def test_process_killed_while_writing_leaves_previous_checkpoint(tmp_path, sub_env):
    # The child writes epoch 1, then starts writing a large epoch 2 and stops inside the write
    # (its flush to disk blocks) until it is killed with SIGKILL.
    path = tmp_path / "last.pt"
    child = textwrap.dedent(f"""
        import os, sys, time, torch
        from bimlp import files
        from bimlp.train import state
        state.atomic_torch_save({{"format": state.TRAIN_FORMAT, "epoch": 1,
                                  "model": {{"w": torch.ones(3)}}}}, {str(path)!r})

        def stall(fd):
            print("writing", flush=True)
            time.sleep(600)

        files.os.fsync = stall  # the atomic writer of every file
        state.atomic_torch_save({{"format": state.TRAIN_FORMAT, "epoch": 2,
                                  "model": {{"w": torch.zeros(4_000_000)}}}}, {str(path)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True,
                            env=sub_env)
    try:
        assert proc.stdout.readline().strip() == "writing"
        temps = list(tmp_path.glob(".last.pt.*.tmp"))
        assert len(temps) == 1 and temps[0].stat().st_size > 16_000_000  # epoch 2, written
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    ckpt = load_training_checkpoint(path)
    assert ckpt["epoch"] == 1 and torch.equal(ckpt["model"]["w"], torch.ones(3))


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "last.pt"
    atomic_torch_save({"format": TRAIN_FORMAT, "epoch": 1, "w": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="not a readable training checkpoint"):
        load_training_checkpoint(path)
    with pytest.raises(CheckpointError, match="no such"):
        load_training_checkpoint(tmp_path / "missing.pt")


class Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_foreign_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": TRAIN_FORMAT, "epoch": 1, "x": Payload()}, path,
               pickle_protocol=2)
    with pytest.raises(CheckpointError, match="not a readable training checkpoint"):
        load_training_checkpoint(path)
    torch.save({"epoch": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=TRAIN_FORMAT):
        load_training_checkpoint(tmp_path / "other.pt")


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path):
    random.random(), np.random.rand(), torch.rand(1)
    atomic_torch_save({"format": TRAIN_FORMAT, "rng": rng_state()}, tmp_path / "c.pt")
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    set_rng_state(load_training_checkpoint(tmp_path / "c.pt")["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected
