"""The small built-in recipe: a BiMLP on the built-in digits, both steps, on a CPU in minutes.

``bimlp train`` without ``--config`` runs it: step 1 (binary activations, real-valued weights,
from scratch) into ``runs/digits/step1``, then step 2 (binary weights too) initialised strictly
from step 1's weights into ``runs/digits/step2``. There is no pretrained full-precision teacher
for this data, so both steps learn from the labels. ``configs/digits_step1.yaml`` and
``configs/digits_step2.yaml`` are the same recipe as files (a test keeps them equal).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from .config import TrainConfig, apply_overrides, config_from_dict, parse_override

__all__ = ["DIGITS_ROOT", "digits_recipe", "builtin_recipes"]

DIGITS_ROOT = "runs/digits"


def digits_recipe(step: int, root: str = DIGITS_ROOT) -> dict[str, Any]:
    """Step 1 or 2 of the digits recipe, as the dict a YAML file would hold."""
    if step not in (1, 2):
        raise ValueError(f"the recipe has steps 1 and 2, not {step}")
    recipe: dict[str, Any] = {
        "model": {
            "name": "bimlp_s",
            # 32x32 input: the stride-4 stem gives 8x8, then 4x4 and 2x2. ~0.38 M parameters.
            "depths": [1, 1, 1],
            "dims": [32, 64, 128],
            "mode": "paper",
            "binary_weights": step == 2,
        },
        "data": {"dataset": "digits", "image_size": 32, "batch_size": 64, "pad": 2},
        "optim": {
            "epochs": 12,
            # 1e-3 at the batch of 64 (a small data set trains faster than ReActNet's 5e-4/256)
            "lr": 4e-3,
            "lr_ref_batch": 256,
            "weight_decay": 1e-5 if step == 1 else 0.0,
            "schedule": "linear",
        },
        "distill": {"teacher": None},
        "run": {"out_dir": f"{root}/step{step}", "seed": 0},
    }
    if step == 2:
        recipe["model"]["init_from"] = f"{root}/step1/model.safetensors"
    return recipe


def builtin_recipes(overrides: Sequence[str] = ()) -> list[TrainConfig]:
    """Both steps of the digits recipe with ``key=value`` overrides applied to each.

    ``run.out_dir=DIR`` moves the whole recipe: the steps go to ``DIR/step1`` and ``DIR/step2``.
    """
    root = DIGITS_ROOT
    rest = []
    for item in overrides:
        keys, value = parse_override(item)
        if keys == ["run", "out_dir"]:
            root = str(PurePosixPath(str(value)))
        else:
            rest.append(item)
    return [config_from_dict(apply_overrides(digits_recipe(s, root), rest)) for s in (1, 2)]
