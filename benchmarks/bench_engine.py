"""Packed 1-bit engine vs float32 PyTorch (eager and torch.compile), same weights and threads.

    python benchmarks/bench_engine.py --model bimlp_s --batch 1 32 --json out.json

Same options as ``bimlp bench``; prints a table and writes JSON keyed by batch size.
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
