"""``bimlp train``: train from a YAML recipe with ``KEY=VALUE`` overrides (and timm-named flags).

    bimlp train                                   # the built-in digits recipe, both steps
    bimlp train --config configs/bimlp_s_step1.yaml data.root=/data/imagenet
    bimlp train --config configs/bimlp_s_step1.yaml --auto-resume   # continue runs/.../last.pt
    bimlp train --resume runs/bimlp_s/step1/last.pt                 # config from the file
    bimlp train --data-dir /data/imagenet -b 128 -j 8 --amp bf16 --config configs/bimlp_s_step1.yaml
    torchrun --nproc_per_node 8 -m bimlp.cli train --config configs/bimlp_s_step2.yaml
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_arguments", "run"]


# flag -> the config key it sets (a shortcut for the KEY=VALUE override of the same key)
FLAG_KEYS = {
    "data_dir": "data.root",
    "batch_size": "data.batch_size",
    "workers": "data.workers",
    "img_size": "data.image_size",
    "amp": "run.amp",
    "output": "run.out_dir",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="YAML",
        help="recipe file (configs/*.yaml); without it the built-in digits recipe runs, "
             "step 1 then step 2",
    )
    parser.add_argument(
        "--resume", metavar="CKPT",
        help="continue a run from this last.pt; without --config, with the config stored in it "
             "(overrides still apply)",
    )
    parser.add_argument(
        "--auto-resume", action="store_true",
        help="continue from RUN.OUT_DIR/last.pt of the recipe where it exists (the built-in "
             "recipe: each step that has one), else start",
    )
    parser.add_argument("--data-dir", metavar="DIR", help="= data.root")
    parser.add_argument("-b", "--batch-size", type=int, metavar="N",
                        help="= data.batch_size (per process; the LR scales linearly with the "
                             "global batch, see optim.lr_ref_batch)")
    parser.add_argument("-j", "--workers", type=int, metavar="N", help="= data.workers")
    parser.add_argument("--img-size", type=int, metavar="N", help="= data.image_size")
    parser.add_argument("--amp", choices=("none", "bf16", "fp16", "auto"), help="= run.amp")
    parser.add_argument("--output", metavar="DIR",
                        help="= run.out_dir (the built-in recipe: DIR/step1 and DIR/step2)")
    parser.add_argument(
        "--print-config", action="store_true",
        help="print the resolved config(s) as YAML and exit",
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE",
        help="dotted overrides read as YAML, e.g. optim.lr=1e-3 data.batch_size=128; they "
             "apply after the flags above",
    )


def flag_overrides(args: argparse.Namespace) -> list[str]:
    """The flags that were given, as ``KEY=VALUE`` overrides (values quoted for YAML)."""
    return [f"{key}={json.dumps(getattr(args, flag))}" for flag, key in FLAG_KEYS.items()
            if getattr(args, flag) is not None]


def run(args: argparse.Namespace) -> int:
    import os
    import sys

    import yaml

    from ..checkpoint import CheckpointError
    from ..data import DataError
    from ..train.config import (
        ConfigError,
        apply_overrides,
        config_from_dict,
        config_to_dict,
        load_config,
    )
    from ..train.distributed import DistributedTimeout
    from ..train.engine import train
    from ..train.recipes import builtin_recipes
    from ..train.state import load_training_checkpoint

    overrides = [*flag_overrides(args), *args.overrides]
    try:
        if args.resume and args.auto_resume:
            raise ConfigError("--resume CKPT and --auto-resume: give one of them")
        if args.config:
            configs = [load_config(args.config, overrides)]
        elif args.resume:  # a checkpoint alone: continue with the config stored inside it
            stored = load_training_checkpoint(args.resume)["config"]
            configs = [config_from_dict(apply_overrides(stored, overrides))]
        else:
            configs = builtin_recipes(overrides)
        if args.print_config:
            for cfg in configs:
                print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="---\n")
            return 0
        builtin = len(configs) > 1
        is_main = os.environ.get("RANK", "0") == "0"
        for i, cfg in enumerate(configs):
            resume = Path(args.resume) if args.resume else None
            if args.auto_resume:
                resume = Path(cfg.run.out_dir) / "last.pt"
                if not resume.is_file():
                    resume = None  # this step has not started yet
            if builtin and is_main:
                print(f"== step {i + 1} of {len(configs)} ==", flush=True)
            train(cfg, resume_from=resume)
    except (ConfigError, DataError, CheckpointError) as e:
        print(f"bimlp train: {e}", file=sys.stderr)
        return 2
    except DistributedTimeout as e:
        print(f"bimlp train: {e}", file=sys.stderr)
        return 1
    return 0
