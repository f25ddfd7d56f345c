"""The `probes` command: parse arguments, configure logging, dispatch to one subcommand module."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from probes.errors import ProbeError

# Each module exposes `register(subparsers)`, adding one or more subcommands whose parser sets
# `func`. Modules must import cheaply (heavy stacks such as mmseg are imported inside `func`).
COMMAND_MODULES = (
    "probes.encoders.commands",
    "probes.classification.commands",
    "probes.segmentation.commands",
    "probes.report.commands",
    "probes.demo.commands",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="probes", description="Probe frozen vision encoders (InternViT family, any timm model).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `probes` console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return int(args.func(args) or 0)
    except ProbeError as exc:
        print(f"probes {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"probes {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        _close_process_group()


def _close_process_group() -> None:
    """Destroy a process group a command started (torchrun / srun runs).

    Left to interpreter exit, gloo's worker threads are destroyed while still joinable and
    `std::terminate` aborts a rank that finished its work (seen ~1 run in 10 on CPU).
    """
    dist = sys.modules.get("torch.distributed")  # never import torch just for this
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
