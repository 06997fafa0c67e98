"""``bimlp eval``: top-1 / top-5 and images/s of a checkpoint on an image folder.

    bimlp eval --model bimlp_s --checkpoint runs/s_step2/model.safetensors --data-dir /data/imagenet
    bimlp eval --model bimlp_m --checkpoint bimlp_m.safetensors --data-dir /data/imagenet/val
    bimlp eval --model bimlp_s --checkpoint runs/digits/step2/model.safetensors --dataset digits
    bimlp eval --model bimlp_s --checkpoint official.safetensors --data-dir /data/imagenet mode=official

Every image is scored: the last partial batch is kept (the release dropped it).
"""

from __future__ import annotations

import argparse

from . import add_alias

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model name, e.g. bimlp_s or wavemlp_t")
    parser.add_argument("--checkpoint", required=True, help="weights file (any supported format)")
    parser.add_argument(
        "--data-dir", metavar="DIR",
        help="ImageNet-style folder (DIR/val/<class>/... or DIR/<class>/...) or a folder of "
             "MNIST idx files",
    )
    add_alias(parser, "--data", dest="data_dir")
    parser.add_argument("--dataset", default="auto", choices=["auto", "folder", "idx", "digits"],
                        help="kind of data (default: detected from --data-dir)")
    parser.add_argument("--split", default="val", help="sub-folder of --data-dir to use if present")
    parser.add_argument("-b", "--batch-size", type=int, default=100, metavar="N")
    parser.add_argument("-j", "--workers", type=int, default=4, metavar="N")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--amp", default="none", choices=["none", "bf16", "fp16", "auto"])
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--allow-class-mismatch", action="store_true",
                        help="score data with fewer classes than the model (label k against "
                             "output k) instead of refusing")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE",
        help="model build arguments over the stored ones, read as YAML, e.g. mode=official",
    )
    add_alias(parser, "--set", dest="legacy_set", action="append", default=[])


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    import torch

    from ..checkpoint import CheckpointError
    from ..data import DataError
    from ..files import check_output_file
    from ..train.amp import amp_dtype
    from ..train.config import ConfigError, parse_override
    from ..train.distributed import setup_distributed
    from ..train.evaluation import (
        check_class_count,
        eval_dataset,
        eval_loader,
        evaluate,
        load_trained_model,
    )
    from ..train.skips import SkipLog

    try:
        if args.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
        if args.workers < 0:
            raise ConfigError(f"--workers must be >= 0, got {args.workers}")
        if args.json:
            check_output_file(args.json, "--json")
        overrides = {}
        for item in [*args.legacy_set, *args.overrides]:
            keys, value = parse_override(item)
            overrides[".".join(keys)] = value
        env = setup_distributed(args.device)
        device = env.device
        model, eval_cfg = load_trained_model(args.model, args.checkpoint, **overrides)
        model.to(device)
        ds, description = eval_dataset(args.data_dir, args.dataset, model, eval_cfg, args.split)
        print(f"{args.model} from {args.checkpoint}; {description}", flush=True)
        note = check_class_count(model, ds, args.allow_class_mismatch)
        if note:
            print(note, flush=True)
        loader = eval_loader(ds, args.batch_size, args.workers, pin=device.type == "cuda")
        skips = SkipLog()
        result = evaluate(model, loader, device, None, amp_dtype(args.amp, device), skips,
                          progress=sys.stderr.isatty())
    except (ConfigError, DataError, CheckpointError, ValueError) as e:
        print(f"bimlp eval: {e}", file=sys.stderr)
        return 2
    skipped = sorted(skips.paths)
    result.update(skipped=len(skipped), model=args.model, checkpoint=str(args.checkpoint),
                  device=str(device), threads=torch.get_num_threads())
    print(f"top-1 {result['top1']:.3f}%  top-5 {result['top5']:.3f}%  "
          f"({result['images']} images scored, {result['img_s']:.1f} images/s on {device})")
    if skipped:
        print(f"skipped {len(skipped)} undecodable image(s): {', '.join(skipped[:5])}")
    if args.json:
        from ..files import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=2))
    return 0
