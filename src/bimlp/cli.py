"""The ``bimlp`` command line: ``bimlp {demo,train,eval,profile,convert,export,bench} ...``.

Each subcommand NAME lives in ``bimlp/commands/NAME.py``, which defines ``add_arguments(parser)``
and ``run(args) -> int``. Building the parser imports no torch (``import bimlp`` is lazy and those
modules do their real imports inside ``run``), so ``bimlp --help`` and ``bimlp NAME --help``
answer at once; a test checks that.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("bimlp.commands.demo", "build a model, run it once and print its size"),
    "convert": ("bimlp.commands.convert", "convert an official MindSpore .ckpt to safetensors"),
    "profile": ("bimlp.commands.profile", "parameters, BOPs, FLOPs, OPs and memory per layer"),
    "train": ("bimlp.commands.train", "train a model from a YAML recipe (two-step, distillation)"),
    "eval": ("bimlp.commands.eval", "top-1/top-5 of a checkpoint on an image folder"),
    "export": ("bimlp.commands.export", "export a packed 1-bit .bimlp artifact"),
    "bench": ("bimlp.commands.bench", "packed engine against float32 PyTorch"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bimlp",
        description="BiMLP binary vision MLPs: models, training, profiling and a packed 1-bit engine",
    )
    parser.add_argument("--version", action="version", version=f"bimlp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
