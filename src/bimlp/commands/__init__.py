"""The subcommands of ``bimlp``: subcommand NAME lives in ``NAME.py``, which defines
``add_arguments(parser)`` and ``run(args) -> int``.

These modules import only the standard library at module level (``bimlp --help`` must not pay for
torch) and do their real imports inside ``run``. Flags follow timm's names wherever timm has one:
``--img-size``, ``-b/--batch-size``, ``--data-dir``, ``-j/--workers``, ``--checkpoint``,
``--output``, ``--amp``; configuration overrides are positional ``KEY=VALUE`` everywhere.
"""

from __future__ import annotations

import argparse

__all__ = ["add_alias"]


def add_alias(parser: argparse.ArgumentParser, *flags: str, dest: str, **kwargs: object) -> None:
    """An older spelling of a flag, still accepted but not shown in ``--help``."""
    parser.add_argument(*flags, dest=dest, help=argparse.SUPPRESS, **kwargs)  # type: ignore[arg-type]
