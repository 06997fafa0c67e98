"""``bimlp profile NAME``: parameters, BOPs, FLOPs, OPs and memory of a registered model.

Prints a per-layer table, a per-stage summary and totals; ``--json`` writes the same numbers
(integer totals ``params``, ``binary_params``, ``bops``, ``flops``, ``size_bytes_fp32``,
``size_bytes_packed``, float ``ops``, plus ``stages`` and ``layers``), ``--plot`` a PNG of where
the OPs go per stage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import add_alias

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="NAME", help="a registered model, e.g. bimlp_s")
    parser.add_argument(
        "--img-size",
        type=int,
        default=None,
        metavar="N",
        help="profile at N x N pixels (default: the model's config, 224)",
    )
    add_alias(parser, "--input-size", dest="img_size", type=int)
    parser.add_argument(
        "--mode",
        choices=("paper", "official"),
        default=None,
        help="numerical mode of binary models (default: the model's, paper); "
        "official mode has ternary activations, counted as FLOPs",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write totals, stages and layers as JSON",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="PNG",
        help="also draw the OPs per stage as a PNG chart",
    )
    parser.add_argument(
        "--all-layers",
        action="store_true",
        help="list norms, biases and activations too, not only MAC layers",
    )


def run(args: argparse.Namespace) -> int:
    from ..models import create_model
    from ..profile.report import plot_ops
    from ..profile.trace import profile

    kwargs = {"mode": args.mode} if args.mode else {}
    if args.img_size is not None and args.img_size < 1:
        print(f"bimlp profile: --img-size must be >= 1, got {args.img_size}", file=sys.stderr)
        return 2
    try:
        model = create_model(args.model, **kwargs)
    except (ValueError, TypeError) as e:  # unknown name; --mode for a model without modes
        print(f"bimlp profile: cannot build {args.model!r}: {e}", file=sys.stderr)
        return 2
    channels, default_side = _default_input(model)
    side = args.img_size or default_side
    mode = getattr(model, "mode", None)
    label = f"{args.model} ({mode} mode)" if mode else args.model
    result = profile(model, (channels, side, side), name=label)
    print(result.format(all_layers=args.all_layers))
    if args.json is not None:
        from ..files import atomic_write_text

        data = {**result.to_dict(), "model": args.model, "mode": mode}
        atomic_write_text(args.json, json.dumps(data, indent=1) + "\n")
        print(f"\nwrote {args.json}")
    if args.plot is not None:
        try:
            plot_ops(result, args.plot)
        except ImportError as e:
            print(f"bimlp profile: {e}", file=sys.stderr)
            return 2
        print(f"wrote {args.plot}")
    return 0


def _default_input(model: object) -> tuple[int, int]:
    """(channels, side) from the model's timm config, else (3, 224)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    c, _, w = cfg.get("input_size", (3, 224, 224))
    return int(c), int(w)
