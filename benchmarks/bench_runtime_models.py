"""At what latency and OPs does each binary model run? BiMLP-S, BiMLP-M in paper and in official
(ternary) numerics, and ReActNet-A on the 1-bit runtime, random weights, beside float ResNet-18 in
ONNX Runtime, interleaved in one process (medians).

    python benchmarks/bench_runtime_models.py -b 1 32 --threads 1 2 --json out.json
    python benchmarks/bench_runtime_models.py --models bimlp_s bimlp_m:official --threads 1

Prints a table (params, BOPs, FLOPs, OPs from ``bimlp.profile``, file size, ms per batch and thread
count, images/s) and writes JSON (runs keyed ``b{batch}_t{threads}``). Artifacts are written to a
temporary folder and removed.
"""

from __future__ import annotations

import argparse
import sys

from bimlp.deploy.bench import DEFAULT_MODELS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), metavar="NAME[:MODE]",
                        help=f"registered models, optionally with numerics (default {' '.join(DEFAULT_MODELS)})")
    parser.add_argument("-b", "--batch-size", type=int, nargs="+", default=[1, 32], metavar="N",
                        help="batch sizes (default 1 32)")
    parser.add_argument("--img-size", type=int, default=224, metavar="N", help="input resolution (default 224)")
    parser.add_argument("--num-classes", type=int, help="classes of every model (default: each model's, 1000)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="thread counts, each used by every engine (default 1 2)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds at batch 1 (default 5)")
    parser.add_argument("--batched-rounds", type=int, default=3,
                        help="interleaved timed rounds at larger batches (default 3)")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="seconds per engine and batch after which timing stops (at least 3 runs)")
    parser.add_argument("--no-reference", action="store_true", help="skip the ResNet-18 ONNX Runtime row")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    from bimlp.deploy.bench import benchmark_models, print_models_report, write_json
    from bimlp.files import check_output_file

    try:
        if args.img_size < 1 or any(b < 1 for b in args.batch_size) or any(t < 1 for t in args.threads):
            raise ValueError("--img-size, --batch-size and --threads values must be >= 1")
        if args.json:
            check_output_file(args.json, "--json")
        results = benchmark_models(
            tuple(args.models), tuple(args.batch_size), args.img_size, tuple(args.threads), args.rounds,
            args.batched_rounds, args.budget, args.num_classes, reference=not args.no_reference,
            log=lambda s: print(s, file=sys.stderr, flush=True))
    except ValueError as e:
        print(f"bench_runtime_models: {e}", file=sys.stderr)
        return 2
    print_models_report(results)
    if args.json:
        print(f"wrote {write_json(results, args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
