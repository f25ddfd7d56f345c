"""The `probes` command: parse arguments, configure logging, dispatch to one subcommand module."""
from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import sys
from typing import Sequence

from probes.errors import ProbeError
from probes.interrupts import Interrupt, RunInterrupted, resume_command, signal_of

# Each module exposes `register(subparsers)`, adding one or more subcommands whose parser sets
# `func`. Modules must import cheaply (heavy stacks such as mmseg are imported inside `func`).
COMMAND_MODULES = (
    "probes.encoders.commands",
    "probes.classification.commands",
    "probes.segmentation.commands",
    "probes.check_data",
    "probes.report.commands",
    "probes.demo.commands",
    "probes.campaign.commands",
)


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Each option's help ends with its default, unless the help says it already (defaults of None do)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        switch = isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._HelpAction))
        if (switch or not action.option_strings or "default" in text or action.default in (None, argparse.SUPPRESS)
                or action.default == []):
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="probes", description="Probe frozen vision encoders (InternViT family, any timm model).",
        formatter_class=DefaultsHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for command in sub.choices.values():
        command.formatter_class = DefaultsHelpFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `probes` subcommand and return its exit code (a library call: it always returns)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        code = int(args.func(args) or 0)
    except ProbeError as exc:
        print(f"probes {args.command}: error: {exc}", file=sys.stderr)
        code = 2
    except RunInterrupted as exc:
        print(f"probes {args.command}: {exc}", file=sys.stderr)
        if exc.checkpoint is not None:
            print(f"probes {args.command}: continue with: {resume_command('probes', argv)}", file=sys.stderr)
        code = exc.exit_code
    except (KeyboardInterrupt, Interrupt) as exc:
        print(f"probes {args.command}: interrupted", file=sys.stderr)
        code = 128 + signal_of(exc)
    return code


def console_main() -> None:
    """The `probes` console script (and `python -m probes.cli`): `main`, then leave the process."""
    code = main()
    if _close_process_group():
        # Why: with a gloo group, C++ objects still referenced by the finished runner (DDP reducer,
        # work queues) are destroyed during interpreter teardown with their threads joinable, and
        # `std::terminate` aborts a rank that completed its work (seen ~1 CPU torchrun run in 15, even
        # after destroy_process_group). Everything is written (results are fsynced): leave now.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _close_process_group() -> bool:
    """Destroy a process group a command started (torchrun / srun runs); True if there was one."""
    dist = sys.modules.get("torch.distributed")  # never import torch just for this
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return False
    gc.collect()  # release the runner's DDP wrapper while the group still exists
    dist.destroy_process_group()
    return True


if __name__ == "__main__":
    console_main()
