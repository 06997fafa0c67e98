"""``bimlp bench --model NAME``: the 1-bit runtime against the same network in float (torch eager,
torch.compile, ONNX Runtime, OpenVINO) and float ResNet-18 / MobileNetV3-Large in ONNX Runtime."""

from __future__ import annotations

import argparse
import sys

from . import add_alias


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="bimlp_s", help="registered model name (default bimlp_s)")
    parser.add_argument("--checkpoint", help="weights (default: the model's random init)")
    parser.add_argument("-b", "--batch-size", type=int, nargs="+", default=[1, 32], metavar="N",
                        help="batch sizes (default 1 32)")
    add_alias(parser, "--batch", dest="batch_size", type=int, nargs="+")
    parser.add_argument("--img-size", type=int, default=224, metavar="N",
                        help="input resolution (default 224)")
    add_alias(parser, "--image-size", dest="img_size", type=int)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="thread counts, each used by every engine (default 1 2)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved timed rounds (median)")
    parser.add_argument("--budget", type=float, default=90.0,
                        help="seconds per engine and batch after which timing stops (at least 3 runs)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile baseline")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    parser.add_argument("--no-layers", action="store_true", help="skip the runtime's per-step timings")
    parser.add_argument("--no-references", action="store_true",
                        help="skip the ResNet-18 / MobileNetV3-Large ONNX Runtime references")
    parser.add_argument("--all-isas", action="store_true",
                        help="also time the runtime with every kernel instruction set this CPU "
                             "supports (AVX-512, AVX2, portable)")
    parser.add_argument("--json", help="write the results here, keyed by batch size")


def run(args: argparse.Namespace) -> int:
    from ..deploy.bench import benchmark, print_report, write_json

    try:
        if args.img_size < 1:
            raise ValueError(f"--img-size must be >= 1, got {args.img_size}")
        if any(b < 1 for b in args.batch_size):
            raise ValueError(f"--batch-size values must be >= 1, got {args.batch_size}")
        if args.json:
            from ..files import check_output_file

            check_output_file(args.json, "--json")
        results = benchmark(
            args.model, args.checkpoint, tuple(args.batch_size), args.img_size, tuple(args.threads),
            args.repeats, budget_s=args.budget, use_compile=not args.no_compile, memory=not args.no_memory,
            layers=not args.no_layers, all_isas=args.all_isas, references=not args.no_references,
            log=lambda s: print(s, file=sys.stderr, flush=True),
        )
    except ValueError as e:
        print(f"bimlp bench: {e}", file=sys.stderr)
        return 2
    print_report(results)
    if args.json:
        print(f"wrote {write_json(results, args.json)}")
    return 0
