"""``bimlp train``: train from a YAML recipe with ``key=value`` overrides.

    bimlp train                                   # the built-in digits recipe, both steps
    bimlp train --config configs/bimlp_s_step1.yaml data.root=/data/imagenet
    bimlp train --config configs/bimlp_s_step1.yaml --resume   # continue runs/.../last.pt
    bimlp train --resume runs/bimlp_s/step1/last.pt            # the same, config from the file
    torchrun --nproc_per_node 8 -m bimlp.cli train --config configs/bimlp_s_step2.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="YAML",
        help="recipe file (configs/*.yaml); without it the built-in digits recipe runs, "
             "step 1 then step 2",
    )
    parser.add_argument(
        "--resume", nargs="?", const="", default=None, metavar="CKPT",
        help="continue a run from its last.pt: with a path and no --config, the config stored "
             "in it (overrides still apply); without a path, RUN.OUT_DIR/last.pt of the recipe "
             "(the built-in recipe: each step that has one). Put KEY=VALUE overrides first",
    )
    parser.add_argument(
        "--print-config", action="store_true",
        help="print the resolved config(s) as YAML and exit",
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE",
        help="dotted overrides read as YAML, e.g. optim.lr=1e-3 data.batch_size=128",
    )


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
    from ..train.engine import train
    from ..train.recipes import builtin_recipes
    from ..train.state import load_training_checkpoint

    try:
        if args.config:
            configs = [load_config(args.config, args.overrides)]
        elif args.resume:  # a checkpoint alone: continue with the config stored inside it
            stored = load_training_checkpoint(args.resume)["config"]
            configs = [config_from_dict(apply_overrides(stored, args.overrides))]
        else:
            configs = builtin_recipes(args.overrides)
        if args.print_config:
            for cfg in configs:
                print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="---\n")
            return 0
        builtin = len(configs) > 1
        is_main = os.environ.get("RANK", "0") == "0"
        for i, cfg in enumerate(configs):
            resume = None
            if args.resume is not None:
                resume = Path(args.resume or Path(cfg.run.out_dir) / "last.pt")
                if builtin and not resume.is_file():
                    resume = None  # the built-in recipe: this step has not started yet
            if builtin and is_main:
                print(f"== step {i + 1} of {len(configs)} ==", flush=True)
            train(cfg, resume_from=resume)
    except (ConfigError, DataError, CheckpointError) as e:
        print(f"bimlp train: {e}", file=sys.stderr)
        return 2
    return 0
