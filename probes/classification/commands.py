"""`probes classify`: parse flags into config overrides and run the probe sweep (imports stay lazy)."""
from __future__ import annotations

import argparse
from typing import Any, List, Tuple


def register(subparsers: Any) -> None:
    """Add the `classify` subcommand."""
    p = subparsers.add_parser(
        "classify", help="linear and attention-pooling probes on ImageNet-1K, scored on six test sets",
        description="Train probe heads (both types x an lr grid, one backbone pass) on a frozen "
                    "encoder and score them on IN-1K, IN-ReaL, IN-V2, IN-A, IN-R and IN-Sketch.")
    p.add_argument("--encoder", help="HF folder | InternVL chat folder | VERSION=PATH | timm:<name>")
    p.add_argument("--data", help="data root holding train/, val/, real.json, imagenetv2-..., imagenet-a/, ...")
    p.add_argument("--config", help="config file or name under configs/classification/ (e.g. internvit_6b_224px)")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. train.epochs=3 data.paths.IN-A=/data/ina")
    p.add_argument("--out", help="results folder (CSV + checkpoints)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="total batch over all processes")
    p.add_argument("--image-size", type=int)
    p.add_argument("--probes", help="comma list: linear,attn")
    p.add_argument("--lrs", type=float, nargs="+", help="base lrs per 512 images")
    p.add_argument("--device", help="cpu | cuda")
    p.add_argument("--workers", type=int, help="data-loading processes")
    p.add_argument("--allow-subset", action="store_true", help="score partial sets (rows say subset=True)")
    p.add_argument("--cache", metavar="DIR", help="train from a feature cache in DIR (protocol=cached)")
    p.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")
    p.set_defaults(func=run)


def overrides_from_args(args: argparse.Namespace) -> List[Tuple[str, Any]]:
    """Config overrides from the flags (applied before --cfg-options, which win)."""
    from probes.classification.config import parse_options

    flags = [("encoder.source", args.encoder), ("data.root", args.data), ("runtime.out", args.out),
             ("train.epochs", args.epochs), ("train.batch_size", args.batch_size),
             ("image_size", args.image_size), ("runtime.device", args.device),
             ("data.workers", args.workers), ("cache.dir", args.cache),
             ("probe.lrs", list(args.lrs) if args.lrs else None),
             ("probe.probes", [p.strip() for p in args.probes.split(",") if p.strip()] if args.probes else None)]
    pairs = [(k, v) for k, v in flags if v is not None]
    # --epochs / --batch-size mean "of this run", live or cached.
    if args.epochs is not None:
        pairs.append(("cache.epochs", args.epochs))
    if args.batch_size is not None:
        pairs.append(("cache.batch_size", args.batch_size))
    if args.allow_subset:
        pairs.append(("data.allow_subset", True))
    if args.resume:
        pairs.append(("runtime.resume", True))
    return pairs + parse_options(args.cfg_options)


def run(args: argparse.Namespace) -> int:
    """Load the config, apply the overrides, run."""
    from probes.classification.config import load_config
    from probes.classification.runner import run_classify

    cfg = load_config(args.config, overrides_from_args(args))
    run_classify(cfg)
    return 0
