"""`probes segment`: build the config, train and validate with mmengine's Runner, append one CSV row."""
from __future__ import annotations

import datetime as dt
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from probes.errors import ConfigError, DatasetError
from probes.results import SEGMENTATION_COLUMNS, append_rows
from probes.segmentation import settings
from probes.segmentation.datasets import check_dataset, dataset_spec, resolve_root
from probes.encoders import describe_source

log = logging.getLogger(__name__)

CONFIG_ROOT = Path(__file__).resolve().parents[2] / "configs" / "segmentation"
RESULT_FILE = "segmentation.csv"


@dataclass
class SegmentOptions:
    """Everything `probes segment` takes (CLI flags, one to one)."""

    encoder: str
    dataset: str
    data: Path
    mode: str
    config: Optional[Path] = None
    cfg_options: dict = field(default_factory=dict)
    iters: Optional[int] = None
    batch_size: Optional[int] = None
    crop_size: Optional[int] = None
    device: Optional[str] = None
    workers: Optional[int] = None
    out: Path = Path("runs/segmentation")
    resume: bool = False
    launcher: str = "none"
    protocol_label: Optional[str] = None  # e.g. "demo": replaces the protocol word of the row


def default_config(dataset: str, mode: str, version: Optional[str]) -> Path:
    """The version's own config when the suite ships one, else the generic dataset × mode config."""
    own = CONFIG_ROOT / (version or "-") / f"{dataset}_{mode}.py"
    generic = CONFIG_ROOT / f"{dataset}_{mode}.py"
    path = own if own.is_file() else generic
    if not path.is_file():
        raise ConfigError(f"no segmentation config at {path} (configs/ ships with the source tree); pass --config")
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip("/")).strip("_")[-80:] or "encoder"


def _world_size(launcher: str) -> int:
    if launcher == "slurm":
        return int(os.environ.get("SLURM_NTASKS", "1"))
    if launcher == "pytorch":
        return int(os.environ.get("WORLD_SIZE", "1"))
    return 1


def build_config(opts: SegmentOptions) -> tuple[Any, dict]:
    """The mmengine Config for a run and the facts its result row needs."""
    from mmengine.config import Config

    if opts.mode not in settings.MODES:
        raise ConfigError(f"--mode {opts.mode!r} is not one of {', '.join(settings.MODES)}")
    spec = dataset_spec(opts.dataset)
    if opts.crop_size is not None:
        settings.check_crop(opts.crop_size)
    root = resolve_root(spec, Path(opts.data))
    counts = check_dataset(spec, root)
    info = describe_source(opts.encoder)
    path = Path(opts.config) if opts.config else default_config(spec.key, opts.mode, info.config_version)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    cfg = Config.fromfile(str(path))
    cfg.model.backbone.source = opts.encoder
    settings.set_data(cfg, spec, root, opts.workers)
    if opts.crop_size is not None:
        settings.set_crop(cfg, opts.crop_size)
    if opts.iters is not None:
        settings.set_iters(cfg, opts.iters)
    if opts.batch_size is not None:
        cfg.train_dataloader.batch_size = opts.batch_size
    if opts.cfg_options:
        cfg.merge_from_dict(opts.cfg_options)
    settings.check_mode(cfg, opts.mode, path)
    settings.fill_encoder_shape(cfg, opts.mode, info)
    crop = cfg.model.test_cfg.crop_size[0]
    settings.check_crop(crop)
    total_batch = int(cfg.train_dataloader.batch_size)
    world = _world_size(opts.launcher)
    if total_batch % world:
        raise ConfigError(f"the total batch {total_batch} does not split over {world} processes; "
                          "change --batch-size")
    # Config batch sizes are totals (the recipe's 16); mmengine's loaders take per-process sizes.
    cfg.train_dataloader.batch_size = total_batch // world
    facts = {"spec": spec, "root": root, "info": info, "config": path, "total_batch": total_batch,
             "crop": crop, "iters": int(cfg.train_cfg.max_iters), "n_val": counts[spec.splits[1]]}
    return cfg, facts


def _configure_device(cfg: Any, device: str, mode: str) -> None:
    from mmengine.device import utils as device_utils

    from probes.segmentation.mm_compat import optim_wrapper_type

    if device == "cpu":
        # mmengine places the model on its module-level DEVICE (cuda when present): honour --device cpu.
        device_utils.DEVICE = "cpu"
        cfg.env_cfg.dist_cfg.backend = "gloo"
        # SyncBN has no CPU kernel; mmengine reverts it only for non-distributed runs.
        for head in ("decode_head", "auxiliary_head"):
            norm = cfg.model.get(head, {}) and cfg.model[head].get("norm_cfg")
            if norm and norm.get("type") == "SyncBN":
                norm.type = "BN"
        if cfg.get("launcher", "none") != "none" and not cfg.get("strategy"):
            cfg.model_wrapper_cfg = dict(type="CPUDistributedDataParallel", broadcast_buffers=False,
                                         find_unused_parameters=False)
    elif mode != "full" and cfg.model.backbone.get("dtype") is None:
        # A frozen encoder is stored in bf16 on GPU (half the memory); the recipe computes it in bf16.
        cfg.model.backbone.dtype = "bfloat16"
    cfg.optim_wrapper.type = optim_wrapper_type(cfg.optim_wrapper.get("type", "OptimWrapper"), device)


def _resume_point(work_dir: Path) -> Optional[str]:
    from probes.segmentation.mm_compat import OWN_CHECKPOINT_PREFIX

    marker = work_dir / "last_checkpoint"
    if not marker.is_file():
        return None
    path = Path(marker.read_text().strip())
    if not path.is_file():
        raise ConfigError(f"--resume: {marker} points at {path}, which does not exist")
    return OWN_CHECKPOINT_PREFIX + str(path)


def _unwrap_dataset_error(exc: BaseException) -> Optional[str]:
    # A DatasetError raised in a DataLoader worker is re-raised with the worker traceback in its message;
    # keep only the original sentence.
    text = str(exc)
    lines = [line for line in text.splitlines() if line.startswith("probes.errors.DatasetError: ")]
    return lines[-1].split(": ", 1)[1] if lines else None


def _count_sharded_trainable(model: Any) -> int:
    # With FSDP(use_orig_params=True) each rank's parameters are views of its shard (exact up to FSDP's
    # padding of each flat parameter to a multiple of the world size).
    import torch.distributed as dist

    local = torch.tensor(sum(p.numel() for p in model.parameters() if p.requires_grad), dtype=torch.int64)
    if dist.is_initialized():
        local = local.to("cuda" if torch.cuda.is_available() else "cpu")
        dist.all_reduce(local)
    return int(local.item())


def run_segmentation(opts: SegmentOptions) -> dict:
    """Train and validate one (encoder, dataset, mode); returns the row appended to `--out`."""
    from probes.runtime import resolve_device

    device = resolve_device(opts.device).type
    from probes.segmentation.mm_compat import import_mmseg

    import_mmseg()
    from probes.segmentation.datasets import register_transforms

    register_transforms()
    cfg, facts = build_config(opts)
    cfg.launcher = opts.launcher
    _configure_device(cfg, device, opts.mode)
    work_dir = Path(opts.out) / f"{_slug(opts.encoder)}_{facts['spec'].key}_{opts.mode}"
    cfg.work_dir = str(work_dir)
    # Validate once, by runner.val() after training (also when a resumed run had already finished),
    # instead of the loop's own end-of-training validation.
    cfg.train_cfg.val_begin = cfg.train_cfg.max_iters + 1
    if opts.resume:
        point = _resume_point(work_dir)
        if point is None:
            log.warning("--resume: no checkpoint in %s yet; starting from iteration 0", work_dir)
        cfg.resume, cfg.load_from = point is not None, point

    if device == "cpu":
        from probes.segmentation.mm_compat import init_cpu_process_group

        init_cpu_process_group(opts.launcher)
    from mmengine.runner import FlexibleRunner, Runner

    from probes.segmentation.backbone import count_trainable

    runner = (FlexibleRunner if cfg.get("strategy") else Runner).from_cfg(cfg)
    # FlexibleRunner builds (and shards) the model inside train(): count there, summing shards over ranks.
    trainable = count_trainable(runner.model) if isinstance(runner.model, torch.nn.Module) else None
    try:
        runner.train()
        metrics = runner.val()
        if trainable is None:
            trainable = _count_sharded_trainable(runner.model)
    except DatasetError as exc:
        message = _unwrap_dataset_error(exc)
        if message is None:
            raise
        raise DatasetError(message) from None
    row = {
        "encoder": opts.encoder, "encoder_version": facts["info"].version, "dataset": facts["spec"].name,
        "mode": opts.mode, "mIoU": round(float(metrics["mIoU"]), 2), "aAcc": round(float(metrics["aAcc"]), 2),
        "mAcc": round(float(metrics.get("mAcc", "nan")), 2),
        "n_images": len(runner.val_dataloader.dataset), "iters": runner.iter, "crop_size": facts["crop"],
        "batch_size": facts["total_batch"], "trainable_params": trainable,
        **settings.protocol_of(facts["spec"], facts["info"].config_version, runner.iter, facts["crop"],
                               facts["total_batch"], opts.cfg_options, opts.config, opts.protocol_label),
        "config": str(facts["config"]), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    from mmengine.dist import is_main_process

    if is_main_process():
        append_rows(Path(opts.out) / RESULT_FILE, [row], SEGMENTATION_COLUMNS)
        log.info("%s %s %s: mIoU %.2f aAcc %.2f on %d images", row["encoder_version"], row["dataset"],
                 row["mode"], row["mIoU"], row["aAcc"], row["n_images"])
    return row
