"""`probes segment`: plan the config, train and validate with mmengine's Runner, append one CSV row."""
from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import torch

from probes.config_files import config_dir, load_file
from probes.errors import ConfigError, DatasetError
from probes.encoders.resolved import ResolvedEncoder, resolve_encoder
from probes.protocol import ProtocolWords, number_shaping, recipe_changes
from probes.results import MODES, SEGMENTATION_COLUMNS, append_rows, run_finished
from probes.run_identity import check_rerun, make_run_id, plan_json, write_plan
from probes.runtime import device_type
from probes.segmentation import precision
from probes.segmentation.config_checks import check_crop
from probes.segmentation.config_fill import fill_config, write
from probes.segmentation.identity import protocol_words_of, resolved_values
from probes.segmentation.run_settings import resolve_settings
from probes.segmentation.datasets import DatasetSpec, check_complete, check_dataset, dataset_spec, resolve_root

log = logging.getLogger(__name__)

RESULT_FILE = "segmentation.csv"


@dataclass
class SegmentOptions:
    """Everything `probes segment` takes (CLI flags, one to one)."""

    encoder: str
    dataset: str
    mode: str
    data: Optional[Path] = None
    config: Optional[Path] = None
    cfg_options: dict = field(default_factory=dict)
    iters: Optional[int] = None
    batch_size: Optional[int] = None
    crop_size: Optional[int] = None
    device: Optional[str] = None
    workers: Optional[int] = None
    out: Path = Path("runs/segmentation")
    resume: bool = False
    overwrite: bool = False
    launcher: str = "none"
    strategy: str = "none"
    revision: Optional[str] = None
    protocol_label: Optional[str] = None  # e.g. "demo": replaces the protocol word of the row
    allow_subset: bool = False            # train/score partial splits (the row then says subset=True)


@dataclass(frozen=True)
class SegmentPlan:
    """A resolved run: its mmengine config, the facts its row states, its identity and its protocol words."""

    cfg: Any
    dataset: DatasetSpec
    encoder: ResolvedEncoder
    config_path: Path
    published_config: Path
    total_batch: int
    crop: int
    iters: int
    device: str
    precision: str
    data_root: str
    values: dict
    protocol: ProtocolWords
    run_id: str
    subset: bool = False    # a split has fewer images than the released dataset (--allow-subset)
    arrangement: str = "released"   # how weights are held and updated (precision.py: the `precision` key resolved)
    set_by: dict = field(default_factory=dict)   # each config key the flags, options and encoder set -> by what

    def as_dict(self) -> dict:
        """The plan as plain data: what `--print-config json` prints and the run writes into its folder."""
        return {"run_id": self.run_id, **self.protocol.as_row(), "config_file": str(self.config_path),
                "published_config": str(self.published_config),
                "encoder": {"source": self.encoder.canonical, "fingerprint": self.encoder.fingerprint,
                            "version": self.encoder.version_label, "random_weights": self.encoder.random_weights},
                "dataset": self.dataset.name, "data_root": self.data_root, "device": self.device,
                "precision": self.precision, "precision_arrangement": self.arrangement,
                "total_batch": self.total_batch, "crop": self.crop,
                "iters": self.iters, "config": self.cfg.to_dict(), "set_by": dict(self.set_by)}


def default_config(dataset: str, mode: str, version: Optional[str]) -> Path:
    """The version's own config when the suite ships one, else the generic dataset × mode config."""
    root = config_dir("segmentation")
    own = root / (version or "-") / f"{dataset}_{mode}.py"
    path = own if own.is_file() else root / f"{dataset}_{mode}.py"
    if not path.is_file():
        raise ConfigError(f"no segmentation config at {path}; pass --config")
    return path


def _world_size(launcher: str) -> int:
    if launcher == "slurm":
        return int(os.environ.get("SLURM_NTASKS", "1"))
    if launcher == "pytorch":
        return int(os.environ.get("WORLD_SIZE", "1"))
    return 1


def _resolved_cfg(opts: SegmentOptions, encoder: ResolvedEncoder, spec: DatasetSpec, root: Optional[Path],
                  path: Path) -> tuple[Any, dict[str, str]]:
    """The config a run executes (the file filled from the run's settings), and each key set and by what."""
    cfg = load_file(path)
    run = resolve_settings(opts, encoder.info, spec, root)
    return cfg, fill_config(cfg, run, opts.cfg_options, path)


def plan_segmentation(opts: SegmentOptions, check_data: bool = True) -> SegmentPlan:
    """The resolved run (no weights are read; data folders are checked when `check_data`)."""
    if opts.mode not in MODES:
        raise ConfigError(f"--mode {opts.mode!r} is not one of {', '.join(MODES)}")
    spec = dataset_spec(opts.dataset)
    encoder = resolve_encoder(opts.encoder, revision=opts.revision)
    info = encoder.info
    if opts.crop_size is not None:
        check_crop(opts.crop_size, info.patch_size)
    root, subset = None, False
    if check_data:
        if opts.data is None:
            raise ConfigError("--data is required to train (only --print-config works without it)")
        root = resolve_root(spec, Path(opts.data))
        subset = check_complete(spec, root, check_dataset(spec, root), opts.allow_subset)
    published_path = default_config(spec.key, opts.mode, encoder.published_architecture)
    path = Path(opts.config) if opts.config else published_path
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    cfg, set_by = _resolved_cfg(opts, encoder, spec, root, path)
    crop = cfg.model.test_cfg.crop_size[0]
    total_batch = int(cfg.train_dataloader.batch_size)
    world = _world_size(opts.launcher)
    if total_batch % world:
        raise ConfigError(f"the total batch {total_batch} does not split over {world} processes; "
                          "change --batch-size")
    iters = int(cfg.train_cfg.max_iters)
    device = device_type(opts.device)
    data_root = os.path.realpath(root) if root is not None else (
        os.path.realpath(Path(opts.data).expanduser()) if opts.data is not None else "")
    arrangement = precision.resolve_precision(cfg.get("precision"), device, opts.mode, opts.strategy)
    values = resolved_values(cfg, encoder, data_root, device, opts.mode, arrangement)
    # The plan the published recipe gives for this encoder: its own config, no option, the recipe's device.
    published_opts = replace(opts, config=None, cfg_options={}, iters=None, batch_size=None, crop_size=None,
                             strategy="none")
    published_cfg, _ = _resolved_cfg(published_opts, encoder, spec, root, published_path)
    published = resolved_values(published_cfg, encoder, data_root, "cuda", opts.mode,
                        precision.resolve_precision(published_cfg.get("precision"), "cuda", opts.mode))
    protocol = protocol_words_of(cfg, recipe_changes(values, published), info.patch_size, crop,
                                          opts.protocol_label, encoder.random_weights)
    run_id = make_run_id(encoder.name, [spec.key, opts.mode, f"{crop}px"], number_shaping(values))
    # Config batch sizes are totals (the recipe's 16); mmengine's loaders take per-process sizes.
    write(cfg, {"train_dataloader.batch_size": total_batch // world})
    if world > 1:
        set_by["train_dataloader.batch_size"] = f"total batch / {world} processes (--launcher)"
    return SegmentPlan(cfg, spec, encoder, path, published_path, total_batch, crop, iters, device,
                       values["effective"]["precision"], data_root, values, protocol, run_id, subset, arrangement,
                       set_by)


def _walk_norms(node: Any, old: str, new: str) -> None:
    if isinstance(node, dict):
        norm = node.get("norm_cfg")
        if isinstance(norm, dict) and norm.get("type") == old:
            norm["type"] = new
        for value in node.values():
            _walk_norms(value, old, new)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _walk_norms(value, old, new)


def _configure_device(cfg: Any, device: str, mode: str, arrangement: str) -> None:
    from mmengine.device import utils as device_utils

    from probes.segmentation.mm_compat import optim_wrapper_type

    if device == "cpu":
        # mmengine places the model on its module-level DEVICE (cuda when present): honour --device cpu.
        device_utils.DEVICE = "cpu"
        cfg.env_cfg.dist_cfg.backend = "gloo"
        # torch's SyncBatchNorm refuses CPU tensors; GlobalSyncBN gives the same global statistics there.
        _walk_norms(cfg.model, "SyncBN", "GlobalSyncBN")
        cpu_ddp = dict(type="CPUDistributedDataParallel", broadcast_buffers=False, find_unused_parameters=False)
        if cfg.get("launcher", "none") != "none" and not cfg.get("strategy"):
            cfg.model_wrapper_cfg = cpu_ddp
        if cfg.get("strategy", {}).get("type") == "DDPStrategy":
            cfg.strategy.model_wrapper = cpu_ddp
        if cfg.get("strategy", {}).get("type") == "ProbeFSDPStrategy":
            # mmengine passes device_id=LOCAL_RANK, a CUDA index; FSDP takes a device: keep the shards on CPU.
            cfg.strategy.model_wrapper.device_id = "cpu"
    else:
        # torch 1.12's defaults, which the released runs had: TF32 for cuDNN convolutions, not for matmuls.
        torch.backends.cudnn.allow_tf32 = bool(cfg.get("allow_tf32", True))
        torch.backends.cuda.matmul.allow_tf32 = False
    precision.configure(cfg, arrangement, mode)
    cfg.optim_wrapper.type = optim_wrapper_type(cfg.optim_wrapper.get("type", "OptimWrapper"), device)


def _resume_point(work_dir: Path) -> Optional[str]:
    from probes.segmentation.interrupts import last_checkpoint
    from probes.segmentation.mm_compat import OWN_CHECKPOINT_PREFIX

    marker = work_dir / "last_checkpoint"
    if not marker.is_file():
        return None
    named = marker.read_text().strip()
    # mmengine writes the marker in place: one torn by a kill is empty; the newest checkpoint is then the one.
    path = Path(named) if named else last_checkpoint(work_dir)
    if path is None or not path.is_file():
        raise ConfigError(f"--resume: {marker} points at {path}, which does not exist")
    return OWN_CHECKPOINT_PREFIX + str(path)


def _unwrap_dataset_error(exc: BaseException) -> Optional[str]:
    # A DatasetError raised in a DataLoader worker is re-raised with the worker traceback in its message;
    # keep only the original sentence.
    lines = [line for line in str(exc).splitlines() if line.startswith("probes.errors.DatasetError: ")]
    return lines[-1].split(": ", 1)[1] if lines else None


def _count_trainable(model: Any) -> int:
    """Trainable parameters of the whole model, also when FSDP holds them sharded over ranks."""
    import torch.distributed as dist
    from torch.distributed.fsdp import FullyShardedDataParallel

    from probes.runtime import count_trainable

    local = count_trainable(model)
    if dist.is_initialized() and any(isinstance(m, FullyShardedDataParallel) for m in model.modules()):
        # With use_orig_params=True each rank's parameters are views of its own shard: sum them (exact up
        # to FSDP's padding of each flat parameter to a multiple of the world size).
        total = torch.tensor(local, dtype=torch.int64, device="cuda" if torch.cuda.is_available() else "cpu")
        dist.all_reduce(total)
        return int(total.item())
    return local


def _prepare_runtime(opts: SegmentOptions, require_device: bool = True) -> str:
    from probes.runtime import resolve_device
    from probes.segmentation.datasets import register_transforms
    from probes.segmentation.mm_compat import import_mmseg

    # --print-config may plan for a CUDA run on a machine without one; a run needs the device.
    device = resolve_device(opts.device).type if require_device else device_type(opts.device)
    import_mmseg()
    register_transforms()
    return device


def print_config(opts: SegmentOptions, fmt: str = "py") -> str:
    """The run's plan (the resolved config with blocks, widths, mean/std filled in), without weights or data.

    A last section, `set_by`, names each key the run's flags, `--cfg-options` and encoder set, and what set it
    (the device settings `--device` and `--launcher` bring aside).
    """
    from mmengine.config import Config

    from probes.config_files import dump_config

    device = _prepare_runtime(opts, require_device=False)
    plan = plan_segmentation(opts, check_data=opts.data is not None)
    plan.cfg.launcher = opts.launcher
    _configure_device(plan.cfg, device, opts.mode, plan.arrangement)
    if fmt == "json":
        return plan_json(plan.as_dict()).rstrip("\n")
    plan.cfg.run_id = plan.run_id
    plan.cfg.protocol = plan.protocol.as_row()
    # Last, apart from the config it explains (mmengine sorts a config's own keys).
    by = Config(dict(set_by=plan.set_by)).pretty_text
    return (f"{dump_config(plan.cfg, fmt)}\n# set_by: what set each key, of the flags, --cfg-options and the encoder "
            f"(--device's and --launcher's device settings aside)\n{by}")


def run_segmentation(opts: SegmentOptions) -> dict:
    """Train and validate one (encoder, dataset, mode); returns the row appended to `--out`."""
    device = _prepare_runtime(opts)
    plan = plan_segmentation(opts)
    cfg = plan.cfg
    cfg.launcher = opts.launcher
    _configure_device(cfg, device, opts.mode, plan.arrangement)
    results = Path(opts.out) / RESULT_FILE
    work_dir = Path(opts.out) / plan.run_id
    marker = work_dir / "last_checkpoint"
    if check_rerun(plan.run_id, run_finished(results, plan.run_id), opts.resume, opts.overwrite, str(results),
                   interrupted=marker if marker.is_file() else None):
        log.info("run %s is already finished in %s: nothing to do", plan.run_id, results)
        return {}
    if opts.overwrite and marker.is_file() and not opts.resume:
        marker.unlink()   # --overwrite starts the run again from iteration 0
    write_plan(work_dir / "plan.json", plan.as_dict())
    cfg.work_dir = str(work_dir)
    predictions = f"predictions/{plan.run_id}.npz"
    # Same numbers as the released IoUMetric, plus each image's counts for intervals and comparisons.
    cfg.val_evaluator = dict(cfg.val_evaluator, type="PerImageIoUMetric", counts_file=str(Path(opts.out) / predictions))
    if opts.resume:
        point = _resume_point(work_dir)
        if point is None:
            log.warning("--resume: no checkpoint in %s yet; starting from iteration 0", work_dir)
        cfg.resume, cfg.load_from = point is not None, point

    if device == "cpu":
        from probes.segmentation.mm_compat import init_cpu_process_group

        init_cpu_process_group(opts.launcher)
    from mmengine.dist import is_main_process
    from mmengine.runner import FlexibleRunner, Runner

    from probes.interrupts import Interrupt, RunInterrupted, SignalGuard, signal_of
    from probes.progress import on_terminal
    from probes.segmentation.console import ProgressBarHook, quiet
    from probes.segmentation.hooks import evaluation_history
    from probes.segmentation.interrupts import InterruptHook, atomic_saves, checkpoint_iteration

    bar = on_terminal()
    runner = atomic_saves(quiet(FlexibleRunner if cfg.get("strategy") else Runner, bar=bar)).from_cfg(cfg)
    world = _world_size(opts.launcher)
    guard = SignalGuard()
    # A single process may stop inside a validation at once; several must agree, which they do per iteration.
    interrupts = InterruptHook(guard, world, stop_in_validation=world == 1 and not cfg.get("strategy"))
    runner.register_hook(interrupts)
    progress = ProgressBarHook()
    if bar and is_main_process():
        runner.register_hook(progress)
    # The guard stays on while an interrupted run saves: a further signal then stops that save, atomically.
    with guard:
        try:
            runner.train()
            history = evaluation_history(runner)
            if not history or history[-1]["iter"] != runner.iter:
                runner.val()  # e.g. a resumed run that had already trained to the end
                history = evaluation_history(runner)
        except DatasetError as exc:
            message = _unwrap_dataset_error(exc)
            if message is None:
                raise
            raise DatasetError(message) from None
        except (Interrupt, KeyboardInterrupt) as exc:
            progress.close()
            kept = interrupts.kept(runner, exc)
            done = checkpoint_iteration(kept) if kept is not None else None
            raise RunInterrupted(signal_of(exc), kept, f"iteration {done} of {plan.iters}" if done else None) from None
        finally:
            progress.close()
    row = segmentation_row(opts, plan, history, _count_trainable(runner.model),
                           n_images=len(runner.val_dataloader.dataset), iters=runner.iter,
                           precision=plan.precision, predictions=predictions)
    if is_main_process():
        append_rows(results, [row], SEGMENTATION_COLUMNS, replace_run=plan.run_id if opts.overwrite else None)
        log.debug("row appended to %s; full log in %s", results, runner.logger._log_file)
    return row


def segmentation_row(opts: SegmentOptions, plan: SegmentPlan, history: list[dict], trainable: int, *,
                     n_images: int, iters: int, precision: str, predictions: str) -> dict:
    """The result row: final evaluation as mIoU, the best one beside it."""
    final = history[-1]
    best = max(history, key=lambda h: h["mIoU"])
    return {
        "run_id": plan.run_id, "encoder": plan.encoder.canonical, "encoder_version": plan.encoder.version_label,
        "dataset": plan.dataset.name, "mode": opts.mode, "mIoU": round(final["mIoU"], 2),
        "best_mIoU": round(best["mIoU"], 2), "best_iter": best["iter"], "aAcc": round(final.get("aAcc", float("nan")), 2),
        "mAcc": round(final.get("mAcc", float("nan")), 2), "n_images": n_images,
        "iters": iters, "crop_size": plan.crop, "batch_size": plan.total_batch,
        "trainable_params": trainable, "precision": precision, **plan.protocol.as_row(),
        "config": str(plan.config_path), "predictions": predictions,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),  # as classification's rows
        "subset": plan.subset,
    }
