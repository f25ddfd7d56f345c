"""`probes classify`: parse flags into config overrides and run the probe sweep (imports stay lazy)."""
from __future__ import annotations

import argparse
from typing import Any, Dict


def register(subparsers: Any) -> None:
    """Add the `classify` and `classes` subcommands."""
    p = subparsers.add_parser(
        "classify", help="linear and attention-pooling probes on ImageNet-1K, scored on six test sets",
        description="Train probe heads (both types x an lr grid, the published head always among them, one "
                    "backbone pass) on a frozen encoder and score them on IN-1K, IN-ReaL, IN-V2, IN-A, IN-R "
                    "and IN-Sketch.")
    # Flags left out keep the config's value: each help says the value of the published recipe
    # (probes/configs/classification/_base_/probe_recipe.py; tests/classification/test_cli.py checks them).
    p.add_argument("--encoder", help="HF folder | chat folder | VERSION=PATH | ORG/NAME hub id | timm:<name>[.<tag>] "
                   "(default: the config's encoder.source)")
    p.add_argument("--revision", help="branch, tag or commit of a hub id (default: the repo's default branch)")
    p.add_argument("--data", help="data root holding train/, val/, real.json, imagenetv2-..., imagenet-a/, ... "
                   "(default: the config's data.root)")
    p.add_argument("--config", help="config file or name under configs/classification/ (e.g. internvit_6b_224px) "
                   "(default: the encoder's published config at its resolution, else the base recipe)")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. train.epochs=3 data.paths.IN-A=/data/ina (default: none)")
    p.add_argument("--out", help="results folder (CSV, side files, checkpoints) (default: runs/classification)")
    p.add_argument("--epochs", type=int,
                   help="training epochs of this run, live or cached: sets train.epochs and cache.epochs "
                        "(default: the config's; published 10)")
    p.add_argument("--batch-size", type=int,
                   help="total batch over all processes, live or cached: sets train.batch_size and cache.batch_size "
                        "(default: the config's; published 1024)")
    p.add_argument("--image-size", type=int,
                   help="train and test resolution (default: the config's; the version's published one, else 224)")
    p.add_argument("--probes", help="comma list: linear,attn (default: linear,attn)")
    p.add_argument("--lrs", type=float, nargs="+", help="base lrs per 512 images (the published 0.1 is always added) "
                   "(default: 0.01 0.02 0.05 0.1 0.2 0.5 1.0 2.0)")
    p.add_argument("--layers", help="extra linear heads on these blocks (counted from 1), e.g. 12,24,36 or every:4 "
                   "(default: none)")
    p.add_argument("--seeds", type=int, metavar="K",
                   help="train K replicas of every head (other initialisation, and data order when cached) on the "
                        "same backbone pass; rows score replica 0, the report's intervals cover the seed spread "
                        "(default: 1)")
    p.add_argument("--precision", choices=("fp16", "bf16", "fp32"), help="GPU precision (default: fp16, as published)")
    p.add_argument("--device", help="cpu | cuda (default: cuda if available, else cpu)")
    p.add_argument("--workers", type=int,
                   help="data-loading processes per process (default: the cores available, at most 8)")
    p.add_argument("--allow-subset", action="store_true", help="score partial sets (rows say subset=True)")
    p.add_argument("--cache", metavar="DIR",
                   help="train from a feature cache in DIR (protocol=cached) (default: none: features computed live)")
    p.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")
    p.add_argument("--overwrite", action="store_true", help="run again a run already finished in --out, "
                   "replacing its rows")
    p.add_argument("--print-config", nargs="?", const="py", choices=("py", "json"), default=None,
                   help="print the fully resolved config and exit (no weights or data are read); py when no "
                        "format is given (default: off)")
    p.set_defaults(func=run)
    c = subparsers.add_parser(
        "classes", help="list a set's class folders (wnids) with their 1000-way index and name",
        description="Print one line per class: its 1000-way ImageNet index, its wnid (the folder name a data "
                    "root must use) and its name. IN-A and IN-R have 200 of the 1000 classes; IN-1K's list is also "
                    "that of train/, val/ (wnid layout), IN-V2 (wnid layout) and IN-Sketch.")
    c.add_argument("set", choices=("IN-1K", "IN-A", "IN-R"), help="which set's classes")
    c.set_defaults(func=run_classes)


def _layers(text: str) -> Any:
    return text if text.startswith("every:") else [int(v) for v in text.split(",") if v.strip()]


def overrides_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    """Config overrides (dotted keys) from the flags; `--cfg-options` items are applied after them and win."""
    from probes.config_files import parse_cfg_options

    flags = {"encoder.source": args.encoder, "data.root": args.data, "runtime.out": args.out,
             "train.epochs": args.epochs, "train.batch_size": args.batch_size, "image_size": args.image_size,
             "runtime.device": args.device, "data.workers": args.workers, "cache.dir": args.cache,
             "train.precision": args.precision, "encoder.revision": args.revision, "train.seeds": args.seeds,
             "probe.lrs": list(args.lrs) if args.lrs else None,
             "probe.layers": _layers(args.layers) if args.layers else None,
             "probe.probes": [p.strip() for p in args.probes.split(",") if p.strip()] if args.probes else None}
    options = {k: v for k, v in flags.items() if v is not None}
    # --epochs / --batch-size mean "of this run", live or cached.
    if args.epochs is not None:
        options["cache.epochs"] = args.epochs
    if args.batch_size is not None:
        options["cache.batch_size"] = args.batch_size
    for flag, key in (("allow_subset", "data.allow_subset"), ("resume", "runtime.resume"),
                      ("overwrite", "runtime.overwrite")):
        if getattr(args, flag):
            options[key] = True
    options.update(parse_cfg_options(args.cfg_options))
    return options


def run_classes(args: argparse.Namespace) -> int:
    """Print index, wnid and name of each class of a set."""
    from probes.classification import imagenet_info as info

    indices = {"IN-A": info.imagenet_a_indices, "IN-R": info.imagenet_r_indices}.get(
        args.set, lambda: range(info.NUM_CLASSES))()
    wnids, names = info.imagenet_wnids(), info.lemmas()
    for i in indices:
        print(f"{i}\t{wnids[i]}\t{names[i]}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Plan the run from the config and the flags, then run it (or print the plan)."""
    from probes.classification.plan import plan_from_options

    plan = plan_from_options(args.config, overrides_from_args(args))
    if args.print_config:
        from probes.classification.plan import describe_plan

        print(describe_plan(plan, args.print_config))
        return 0
    from probes.classification.runner import run_classify

    rows = run_classify(plan.cfg, plan)
    if not rows:
        print(f"run {plan.run_id} already finished in {plan.cfg.runtime.out}: nothing to do")
    return 0
