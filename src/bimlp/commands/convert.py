"""``bimlp convert IN.ckpt -o OUT.safetensors``: official MindSpore weights -> our format."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="official MindSpore .ckpt file")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output .safetensors file")


def run(args: argparse.Namespace) -> int:
    import sys

    from ..checkpoint import CheckpointError, read_weights
    from ..files import OutputPathError, check_output_file
    from ..models import convert_official, family_of, variant_for

    try:
        check_output_file(args.output, "-o/--output")
        out = convert_official(args.checkpoint, args.output)
    except (CheckpointError, OutputPathError) as e:
        print(f"bimlp convert: {e}", file=sys.stderr)
        return 2
    state, config, _ = read_weights(out)
    name = variant_for("bimlp", config)
    shown = [*family_of(name).variants[name], "num_classes"]  # the fields a variant sets
    arch = ", ".join(f"{k}={config[k]}" for k in shown)
    print(f"wrote {out} ({len(state)} tensors, {out.stat().st_size / 1e6:.2f} MB; {arch})")
    print(f"load it with bimlp.create_model('{name}', checkpoint='{out}', mode='official')")
    return 0
