"""``bimlp export --model NAME [--checkpoint PATH] -o OUT.bimlp [--onnx OUT.onnx]``."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from . import add_alias


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="registered model name, e.g. bimlp_s")
    parser.add_argument("--checkpoint", help="weights to export (safetensors, MindSpore .ckpt)")
    parser.add_argument("-o", "--output", required=True, help="the .bimlp file to write")
    parser.add_argument("--mode", default=None, choices=("paper", "official"),
                        help="numerical mode of the model (default: the checkpoint's, e.g. official "
                             "for a release .ckpt or its `bimlp convert` file; paper without one)")
    parser.add_argument("--onnx", help="also write the simulated float model as ONNX here")
    parser.add_argument("--img-size", type=int, default=224, metavar="N",
                        help="ONNX input size (default 224)")
    add_alias(parser, "--image-size", dest="img_size", type=int)


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import CheckpointError, save_weights
    from ..deploy.artifact import export, size_report
    from ..deploy.pack import pack_weights
    from ..files import check_output_file
    from ..models import create_model

    try:
        check_output_file(args.output, "-o/--output")
        if args.onnx is not None:
            check_output_file(args.onnx, "--onnx")
            if args.img_size < 1:
                raise ValueError(f"--img-size must be >= 1, got {args.img_size}")
        kwargs = {"mode": args.mode} if args.mode else {}
        model = create_model(args.model, checkpoint=args.checkpoint, **kwargs).eval()
        packed = pack_weights(model)
        source = {"model": args.model,
                  "checkpoint": Path(args.checkpoint).name if args.checkpoint else None}
        out = export(packed, args.output, source=source)
    except (ValueError, CheckpointError) as e:
        print(f"bimlp export: {e}", file=sys.stderr)
        return 2
    sizes = size_report(packed)
    with tempfile.TemporaryDirectory() as tmp:
        float_bytes = save_weights(model, Path(tmp) / "float.safetensors").stat().st_size
    size = out.stat().st_size
    print(f"wrote {out}: {packed.config.get('mode', 'paper')} numerics, {size / 1e6:.3f} MB ({sizes['binary_weights']:,} binary weights as bits, "
          f"{sizes['float_values']:,} float32 values)")
    print(f"  theoretical minimum {sizes['theoretical_bytes'] / 1e6:.3f} MB "
          f"(+{100 * (size / sizes['theoretical_bytes'] - 1):.2f} %); float32 checkpoint "
          f"{float_bytes / 1e6:.3f} MB ({float_bytes / size:.1f}x larger)")
    if args.onnx:
        from ..deploy.onnx import export_onnx

        path = export_onnx(model, args.onnx, image_size=args.img_size)
        print(f"wrote {path} (simulated float32 graph, input 1x{model.config.in_chans}x"
              f"{args.img_size}x{args.img_size}, dynamic batch)")
    return 0
