"""A run's settings written into its mmengine config as data: dotted keys, each named by what set it.

The order is the config's contract: the flags' keys, then `--cfg-options` (which win over flags), then the
encoder's keys (which no option may contradict). `write` is the one place a run's config is written.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

from probes.config_files import apply_options, config_dir, load_file
from probes.encoders import EncoderInfo
from probes.errors import ConfigError
from probes.segmentation import config_checks as checks
from probes.segmentation.datasets import DatasetSpec
from probes.segmentation.run_settings import (Crop, EncoderFacts, RunSettings, Schedule, crop_of, encoder_facts,
                                              schedule_of)

LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")
STRATEGY_FILES = {"ddp": "ddp.py", "fsdp": "fsdp.py", "deepspeed": "deepspeed_zero.py"}


def write(cfg: Any, keys: Mapping[str, Any]) -> None:
    """Merge dotted keys into the config (list items by index), as `--cfg-options` are."""
    if keys:
        cfg.merge_from_dict(dict(keys))


def _transforms(tree: Mapping[str, Any]) -> Iterator[tuple[str, dict]]:
    """Each transform of every loader's pipeline, with its dotted key."""
    for loader in LOADERS:
        for i, t in enumerate(tree.get(loader, {}).get("dataset", {}).get("pipeline", [])):
            yield f"{loader}.dataset.pipeline.{i}", t


def strategy_keys(strategy: str) -> dict[str, Any]:
    """The keys of the strategy's shipped shard (`_base_/strategies/`); none for a single process."""
    if strategy == "none":
        return {}
    return load_file(config_dir("segmentation") / "_base_" / "strategies" / STRATEGY_FILES[strategy]).to_dict()


def data_keys(tree: Mapping[str, Any], num_classes: int, root: Optional[str], workers: Optional[int]) -> dict:
    """The loaders at `root` (when given) with `workers` (when given); the class count of every head."""
    keys: dict[str, Any] = {}
    for loader in LOADERS:
        if root is not None:
            keys[f"{loader}.dataset.data_root"] = root
        if workers is not None:
            keys[f"{loader}.num_workers"] = workers
            keys[f"{loader}.persistent_workers"] = workers > 0
    model = tree.get("model") or {}  # a dataset-only config (a _base_/datasets file) has no heads
    for head in ("decode_head", "auxiliary_head"):
        if model.get(head) is not None:
            keys[f"model.{head}.num_classes"] = num_classes
    keys.update({f"{key}.num_classes": num_classes for key, t in _transforms(tree) if t["type"] == "CheckLabelRange"})
    return keys


def crop_keys(tree: Mapping[str, Any], crop: Crop) -> dict:
    """Every crop-dependent key: pad size, rescale range, random crop, test resize, window, position grid."""
    size = (crop.size, crop.size)
    keys: dict[str, Any] = {"crop_size": size, "model.data_preprocessor.size": size}
    if "data_preprocessor" in tree:
        keys["data_preprocessor.size"] = size
    for key, t in _transforms(tree):
        if t["type"] == "RandomResize":
            keys[f"{key}.scale"] = (4 * crop.size, crop.size)   # the recipe's (2016, 504)
        elif t["type"] == "RandomCrop":
            keys[f"{key}.crop_size"] = size
        elif t["type"] == "ResizeShortestEdge":
            keys[f"{key}.scale"] = crop.size
    keys.update({"model.test_cfg.crop_size": size, "model.test_cfg.stride": (crop.stride, crop.stride),
                 "model.backbone.input_size": crop.size})
    return keys


def schedule_keys(tree: Mapping[str, Any], schedule: Schedule) -> dict:
    """The run's length, its warm-up and poly decay over it, and checkpoints at least every tenth."""
    # mmengine's Linear/Poly schedulers reach their end value at step `end - 1` (schedule_80k.py).
    return {"train_cfg.max_iters": schedule.iters, "param_scheduler.0.end": schedule.warmup + 1,
            "param_scheduler.1.begin": 0, "param_scheduler.1.end": schedule.iters + 1,
            "default_hooks.checkpoint.interval": min(tree["default_hooks"]["checkpoint"]["interval"],
                                                     schedule.checkpoint_every)}


def default_indices(mode: str, num_layers: int) -> list[int]:
    """Linear: the last block; pyramid: four evenly spaced blocks ending at the last (our choice)."""
    if mode == "linear":
        return [num_layers - 1]
    step = num_layers / 4
    return [round(step * (k + 1)) - 1 for k in range(4)]


def _filled(tree: Mapping[str, Any], part: str, key: str, value: Any, what: str) -> dict:
    model = tree["model"]
    if part not in model or model[part] is None:
        return {}
    current = model[part].get(key)
    if current is None:
        return {f"model.{part}.{key}": value}
    if current != value and not (isinstance(current, (list, tuple)) and list(current) == value):
        raise ConfigError(f"model.{part}.{key}={current} does not match the encoder's {what} "
                          f"({value}); remove it from the config or pick another --config")
    return {}


def encoder_keys(tree: Mapping[str, Any], mode: str, encoder: EncoderFacts) -> dict:
    """The None-valued width/depth/patch/normalisation keys from the encoder; a contradiction is an error."""
    backbone = tree["model"]["backbone"]
    depth = backbone.get("num_layers") or encoder.depth
    keys: dict[str, Any] = {}
    out_indices = backbone.get("out_indices")
    if out_indices is None:
        out_indices = keys["model.backbone.out_indices"] = default_indices(mode, depth)
    keys.update(_filled(tree, "neck", "embed_dim", encoder.width, "width"))
    keys.update(_filled(tree, "auxiliary_head", "in_channels", encoder.width, "width"))
    width = encoder.width if mode == "linear" else [encoder.width] * 4
    keys.update(_filled(tree, "decode_head", "in_channels", width, "width"))
    for where in ("model.data_preprocessor", "data_preprocessor"):
        pre = tree["model"]["data_preprocessor"] if where.startswith("model") else tree.get("data_preprocessor")
        if pre is not None:
            if pre.get("mean") is None:
                keys[f"{where}.mean"] = list(encoder.mean)
            if pre.get("std") is None:
                keys[f"{where}.std"] = list(encoder.std)
    keys.update({f"{key}.size_divisor": encoder.patch for key, t in _transforms(tree)
                 if t["type"] == "ResizeToMultiple"})
    paramwise = tree["optim_wrapper"].get("paramwise_cfg", {})
    if "num_layers" in paramwise and paramwise["num_layers"] is None:
        # Blocks actually in the model: pruned after the last out index.
        keys["optim_wrapper.paramwise_cfg.num_layers"] = max(i if i >= 0 else depth + i for i in out_indices) + 1
    return keys


def flag_keys(tree: Mapping[str, Any], run: RunSettings) -> dict[str, tuple[Any, str]]:
    """The keys the run's flags set (before `--cfg-options`), each with the flag that set it."""
    keys: dict[str, tuple[Any, str]] = {"model.backbone.source": (run.source, "--encoder"),
                                        "model.backbone.revision": (run.revision, "--revision")}
    keys.update({k: (v, "--strategy") for k, v in strategy_keys(run.strategy).items()})
    for key, value in data_keys(tree, run.num_classes, run.data_root, run.workers).items():
        by = "--dataset" if key.endswith("num_classes") else "--data" if key.endswith("data_root") else "--workers"
        keys[key] = (value, by)
    if run.crop is not None:
        keys.update({k: (v, run.crop.set_by) for k, v in crop_keys(tree, run.crop).items()})
    if run.schedule is not None:
        keys.update({k: (v, "--iters") for k, v in schedule_keys(tree, run.schedule).items()})
    if run.total_batch is not None:
        keys["train_dataloader.batch_size"] = (run.total_batch, "--batch-size")
    return keys


def fill_config(cfg: Any, run: RunSettings, options: Mapping[str, Any], path: Path) -> dict[str, str]:
    """Write the run's flags, then `options`, then the encoder into `cfg`; returns each key set and by what."""
    flags = flag_keys(cfg.to_dict(), run)
    write(cfg, {k: v for k, (v, _) in flags.items()})
    set_by = {k: by for k, (_, by) in flags.items()}
    options = dict(options or {})
    user_hooks = options.pop("custom_hooks", None)
    checks.check_not_template(options)
    apply_options(cfg, options, module_kwargs_open=True)
    checks.check_module_kwargs(cfg, options)
    set_by.update(dict.fromkeys(options, "--cfg-options"))
    if user_hooks:
        # A user's hooks are added after the suite's own (checkpointing, evaluation history, the non-finite
        # stop), which an override can never remove.
        hooks = [*cfg.get("custom_hooks", []), *(user_hooks if isinstance(user_hooks, (list, tuple))
                                                 else [user_hooks])]
        write(cfg, {"custom_hooks": hooks})
        set_by["custom_hooks"] = "--cfg-options"
    checks.check_mode(cfg, run.mode, path)
    filled = encoder_keys(cfg.to_dict(), run.mode, run.encoder)
    write(cfg, filled)
    set_by.update(dict.fromkeys(filled, "encoder"))
    checks.check_crop(cfg.model.test_cfg.crop_size[0], run.encoder.patch)
    checks.check_options_kept(cfg, options, run.encoder.patch)
    return set_by


# One part of the settings written into a config: what benchmarks and tests that build a model from a shipped
# config call (the same keys a run writes).

def set_data(cfg: Any, spec: DatasetSpec, root: Optional[Path], workers: Optional[int]) -> None:
    """Point the loaders at `root` (when given); set the class count of every head."""
    write(cfg, data_keys(cfg.to_dict(), spec.num_classes, None if root is None else str(root), workers))


def set_crop(cfg: Any, crop: int, patch: int) -> None:
    """Every crop-dependent key for a crop of `crop` (a multiple of `patch`)."""
    checks.check_crop(crop, patch)
    write(cfg, crop_keys(cfg.to_dict(), crop_of(crop)))


def set_iters(cfg: Any, iters: int) -> None:
    """Shorten (or lengthen) the schedule keeping its shape."""
    write(cfg, schedule_keys(cfg.to_dict(), schedule_of(iters)))


def fill_encoder(cfg: Any, mode: str, info: EncoderInfo) -> None:
    """Fill None-valued width/depth/patch/normalisation keys from the encoder; reject contradictions."""
    write(cfg, encoder_keys(cfg.to_dict(), mode, encoder_facts(info)))
