"""Helpers for the training tests: a tiny digits recipe that trains in seconds on one core."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from bimlp.train.recipes import digits_recipe

REPO = Path(__file__).resolve().parents[2]


def tiny_recipe(root: Path | str, step: int = 1, **sections: dict[str, Any]) -> dict[str, Any]:
    """The digits recipe shrunk: 16x16 images, a two-stage BiMLP of 30 k parameters."""
    recipe = digits_recipe(step, str(root))
    recipe["model"].update(depths=[1, 1], dims=[16, 32])
    recipe["data"].update(image_size=16, batch_size=32)
    recipe["optim"].update(epochs=3, lr=4e-2)
    recipe["run"].update(progress=False, tensorboard=False, device="cpu")
    for name, values in sections.items():
        recipe[name].update(values)
    return recipe


@pytest.fixture
def recipe() -> Callable[..., dict[str, Any]]:
    return tiny_recipe


@pytest.fixture(autouse=True)
def one_thread():
    """Single-threaded torch, as in the subprocesses: float results match bit for bit, and a
    CPU shared with other jobs is not slowed down by spinning OpenMP threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def sub_env() -> dict[str, str]:
    """Environment for child processes: one thread, unbuffered, not inside a torchrun job."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def make_image_folder(root: Path, classes: int = 2, train: int = 8, val: int = 4, size: int = 16) -> Path:
    """An ImageNet-style folder of small random PNGs: ``root/{train,val}/c<k>/<i>.png``."""
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", train), ("val", val)):
        for k in range(classes):
            folder = root / split / f"c{k}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = torch.randint(0, 256, (size, size, 3), generator=gen, dtype=torch.uint8)
                Image.fromarray(pixels.numpy()).save(folder / f"{i}.png")
    return root


@pytest.fixture
def image_folder() -> Callable[..., Path]:
    return make_image_folder
