"""The 1-bit runtime vs the same network in float (torch eager, torch.compile, ONNX Runtime,
OpenVINO) and float ResNet-18 / MobileNetV3-Large in ONNX Runtime, interleaved in one process.

    python benchmarks/bench_engine.py --model bimlp_s -b 1 32 --threads 1 2 --json out.json

Same options as ``bimlp bench``; prints a table and writes JSON (runs keyed ``b{batch}_t{threads}``).
"""

from __future__ import annotations

import argparse
import sys

from bimlp.commands import bench as command_bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    command_bench.add_arguments(parser)
    return command_bench.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
