"""`probes segment` and `probes prepare` (thin: parse, call the library; mmseg is imported lazily)."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the segmentation subcommands."""
    seg = sub.add_parser("segment", help="linear probing / head tuning / full tuning on ADE20K or COCO-Stuff")
    seg.add_argument("--encoder", required=True,
                     help="HF/chat folder, VERSION=PATH, ORG/NAME hub id, or timm:<name>[.<tag>]")
    seg.add_argument("--revision", default=None,
                     help="branch, tag or commit of a hub id (default: the repo's default branch)")
    seg.add_argument("--dataset", required=True, choices=("ade20k", "coco-stuff"))
    seg.add_argument("--data", type=Path, default=None,
                     help="ADEChallengeData2016/ or coco_stuff164k/ (or the folder holding it); required to train "
                          "(default: none)")
    seg.add_argument("--mode", required=True, choices=("linear", "head", "full"))
    seg.add_argument("--config", type=Path, default=None,
                     help="mmengine config (default: configs/segmentation/<VERSION>/<dataset>_<mode>.py)")
    seg.add_argument("--cfg-options", nargs="+", default=None, metavar="KEY=VALUE",
                     help="override config keys, e.g. model.decode_head.channels=512 train_dataloader.num_workers=2 "
                          "(default: none)")
    seg.add_argument("--iters", type=int, default=None,
                     help="training iterations (default: the config's; the recipe's 80000)")
    seg.add_argument("--batch-size", type=int, default=None,
                     help="TOTAL batch over all processes (default: the config's; the recipe's 16)")
    seg.add_argument("--crop-size", type=int, default=None,
                     help="train crop and test window, a multiple of the patch size (default: the config's; the "
                          "recipe's 504 for patch 14, its nearest multiple for other patches)")
    seg.add_argument("--device", default=None, choices=("cpu", "cuda"), help="default: cuda if available")
    seg.add_argument("--workers", type=int, default=None,
                     help="data-loader workers per process (default: the config's num_workers, 4)")
    seg.add_argument("--out", type=Path, default=Path("runs/segmentation"),
                     help="results folder: segmentation.csv and one work dir per run")
    seg.add_argument("--allow-subset", action="store_true",
                     help="train and score partial splits (the row then says subset=True)")
    seg.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    seg.add_argument("--overwrite", action="store_true", help="run again a run already finished in --out, "
                     "replacing its row")
    seg.add_argument("--strategy", default="none", choices=("none", "ddp", "fsdp", "deepspeed"),
                     help="mmengine FlexibleRunner strategy: fsdp (torch FSDP) shards the model; ddp is the "
                          "unsharded one (both keep fp32 masters replicated); deepspeed is refused: it does not run "
                          "(the released ZeRO-1 bf16 update is precision='released', the GPU default)")
    seg.add_argument("--print-config", nargs="?", const="py", choices=("py", "json"), default=None,
                     help="print the fully resolved config (no weights or data read) and exit; py when no format "
                          "is given (default: off)")
    seg.add_argument("--launcher", default="none", choices=("none", "pytorch", "slurm"),
                     help="pytorch under torchrun, slurm under srun")
    seg.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)
    seg.set_defaults(func=run_segment)

    prep = sub.add_parser(
        "prepare", help="convert a dataset's annotations into the form training reads",
        description="COCO-Stuff-164K: convert each raw annotation PNG (values 0..181, 255) into "
                    "<id>_labelTrainIds.png beside it (171 train ids, 255 = ignore), as mmseg's converter does. "
                    "Parallel, resumable (done files are kept) and atomic (a kill leaves no half-written file). "
                    "ADE20K needs no preparation.")
    prep.add_argument("dataset", choices=("coco-stuff",))
    prep.add_argument("root", type=Path, help="coco_stuff164k/ (annotations/{train2017,val2017}/*.png)")
    prep.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    prep.set_defaults(func=run_prepare)


def options_from_args(args: argparse.Namespace):
    """The run's `SegmentOptions` from the parsed flags (also what `probes plan` plans a run with)."""
    from probes.config_files import parse_cfg_options
    from probes.segmentation.runner import SegmentOptions

    return SegmentOptions(
        encoder=args.encoder, dataset=args.dataset, data=args.data, mode=args.mode, config=args.config,
        cfg_options=parse_cfg_options(args.cfg_options), iters=args.iters, batch_size=args.batch_size,
        crop_size=args.crop_size, device=args.device, workers=args.workers, out=args.out,
        resume=args.resume, overwrite=args.overwrite, launcher=args.launcher, strategy=args.strategy,
        revision=args.revision, allow_subset=args.allow_subset)


def run_segment(args: argparse.Namespace) -> int:
    """Train + validate, print the result row (or only the resolved config)."""
    from probes.segmentation.runner import print_config, run_segmentation

    opts = options_from_args(args)
    if args.print_config:
        print(print_config(opts, args.print_config))
        return 0
    row = run_segmentation(opts)
    if not row:
        print(f"run already finished in {args.out}: nothing to do")
        return 0
    print(f"{row['run_id']}: {row['dataset']} {row['mode']} mIoU {row['mIoU']:.2f} (best {row['best_mIoU']:.2f} at "
          f"{row['best_iter']}) aAcc {row['aAcc']:.2f} ({row['n_images']} images, {row['iters']} iters) -> row in "
          f"{Path(args.out) / 'segmentation.csv'}, run folder {Path(args.out) / row['run_id']} (full log there)")
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    """Convert COCO-Stuff annotations to train ids (resumable)."""
    from probes.segmentation.coco_stuff import prepare_coco_stuff

    converted, skipped = prepare_coco_stuff(args.root, workers=args.workers)
    print(f"coco-stuff: {converted} annotations converted, {skipped} already done")
    return 0
