"""Turn CLI choices (crop, iters, batch, encoder shape, dataset) into config keys, and name the protocol."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from probes.errors import ConfigError
from probes.segmentation.datasets import DatasetSpec
from probes.encoders import EncoderInfo

# The released recipe (protocols.md): what a row's `protocol` is measured against.
RECIPE = {"iters": 80000, "crop": 504, "batch": 16, "warmup": 1500, "stride": 322}
RELEASED_VERSION = "InternViT-6B-224px"   # the only encoder whose segmentation configs were released
MODES = ("linear", "head", "full")
# Overrides that cannot change a result (loading, logging, checkpoint cadence) are left out of `protocol`.
_NO_EFFECT = re.compile(r"(num_workers|persistent_workers|pin_memory|^default_hooks\.|^log_|^visualizer|^env_cfg)")


def check_crop(crop: int, patch: int = 14) -> None:
    """A crop must be a positive multiple of the patch size."""
    if crop <= 0 or crop % patch:
        raise ConfigError(f"--crop-size {crop} is not a positive multiple of the patch size {patch} "
                          f"(e.g. {max(patch, round(crop / patch) * patch)})")


def _transforms(cfg: Any) -> list[dict]:
    found = []
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        dataset = cfg.get(loader, {}).get("dataset", {})
        found += list(dataset.get("pipeline", []))
    return found


def set_crop(cfg: Any, crop: int) -> None:
    """Every crop-dependent key: preprocessor pad size, rescale range, random crop, sliding window."""
    check_crop(crop)
    scale = (4 * crop, crop)   # the recipe's (2016, 504)
    cfg.crop_size = (crop, crop)
    cfg.model.data_preprocessor.size = (crop, crop)
    if "data_preprocessor" in cfg:
        cfg.data_preprocessor.size = (crop, crop)
    for t in _transforms(cfg):
        if t["type"] in ("RandomResize", "Resize"):
            t["scale"] = scale
        elif t["type"] == "RandomCrop":
            t["crop_size"] = (crop, crop)
    stride = max(1, round(crop * RECIPE["stride"] / RECIPE["crop"]))
    cfg.model.test_cfg.update(crop_size=(crop, crop), stride=(stride, stride))


def set_iters(cfg: Any, iters: int) -> None:
    """Shorten (or lengthen) the schedule keeping its shape: warm-up scales with the run."""
    if iters <= 0:
        raise ConfigError(f"--iters {iters} must be positive")
    # At least 2 where possible: mmengine's LinearLR never applies its end factor, so a 1-step warm-up
    # would leave the whole run at 1e-6 of the lr; and poly needs at least one step after the warm-up.
    warmup = max(1, min(iters - 1, max(2, round(RECIPE["warmup"] * iters / RECIPE["iters"]))))
    cfg.train_cfg.max_iters = iters
    warm, poly = cfg.param_scheduler
    warm.end, poly.begin, poly.end = warmup, warmup, iters
    if iters == 1:
        cfg.param_scheduler = [warm]
    checkpoint = cfg.default_hooks.checkpoint
    checkpoint.interval = min(checkpoint.interval, iters)


def set_data(cfg: Any, spec: DatasetSpec, root: Path, workers: int | None) -> None:
    """Point both loaders at `root`; set the class count of every head."""
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        dl = cfg[loader]
        dl.dataset.data_root = str(root)
        if workers is not None:
            dl.num_workers = workers
            dl.persistent_workers = workers > 0
    for head in ("decode_head", "auxiliary_head"):
        if head in cfg.model and cfg.model[head] is not None:
            cfg.model[head].num_classes = spec.num_classes
    for t in _transforms(cfg):
        if t["type"] == "CheckLabelRange":
            t["num_classes"] = spec.num_classes


def default_indices(mode: str, num_layers: int) -> list[int]:
    """Linear: the last block; pyramid: four evenly spaced blocks ending at the last (protocols.md)."""
    if mode == "linear":
        return [num_layers - 1]
    step = num_layers / 4
    return [round(step * (k + 1)) - 1 for k in range(4)]


def fill_encoder_shape(cfg: Any, mode: str, info: EncoderInfo) -> None:
    """Fill None-valued width/depth keys from the encoder; reject values that contradict it."""
    model = cfg.model
    backbone = model.backbone
    depth = backbone.get("num_layers") or info.num_layers
    if backbone.get("out_indices") is None:
        backbone.out_indices = default_indices(mode, depth)
    wanted = {("neck", "embed_dim"): info.embed_dim, ("auxiliary_head", "in_channels"): info.embed_dim}
    if mode == "linear":
        wanted[("decode_head", "in_channels")] = info.embed_dim
    else:
        wanted[("decode_head", "in_channels")] = [info.embed_dim] * 4
    for (part, key), value in wanted.items():
        if part not in model or model[part] is None:
            continue
        current = model[part].get(key)
        if current is None:
            model[part][key] = value
        elif current != value and not (isinstance(current, (list, tuple)) and list(current) == value):
            raise ConfigError(f"model.{part}.{key}={current} does not match the encoder's width "
                              f"{info.embed_dim}; remove it from the config or pick another --config")
    paramwise = cfg.optim_wrapper.get("paramwise_cfg", {})
    if "num_layers" in paramwise and paramwise.num_layers is None:
        # Blocks actually in the model: pruned after the last out index.
        paramwise.num_layers = max(i if i >= 0 else depth + i for i in backbone.out_indices) + 1


def check_mode(cfg: Any, mode: str, config_path: Path) -> None:
    """The config must build the model the mode names (trainable encoder iff full; neck iff not linear)."""
    trainable = bool(cfg.model.backbone.get("trainable", False))
    if trainable != (mode == "full"):
        state = "trains" if trainable else "freezes"
        raise ConfigError(f"{config_path} {state} the encoder (model.backbone.trainable={trainable}) "
                          f"but --mode is {mode}")
    has_neck = cfg.model.get("neck") is not None
    if has_neck == (mode == "linear"):
        raise ConfigError(f"{config_path} {'has' if has_neck else 'has no'} pyramid neck, "
                          f"which does not fit --mode {mode}")


def protocol_of(dataset: DatasetSpec, version: str | None, iters: int, crop: int, batch: int,
                cfg_options: dict | None, user_config: Path | None = None,
                label: str | None = None) -> dict[str, str]:
    """The row's `protocol` (published | modified, or `label`) and `protocol_notes` naming every deviation."""
    released = dataset.key == "ade20k" and version == RELEASED_VERSION
    notes = ["released InternVL ADE20K recipe" if released
             else "InternVL ADE20K recipe applied by this suite (no released config for this encoder/dataset)"]
    changes = []
    if user_config is not None:
        changes.append(f"user config {user_config}")
    for name, value in (("iters", iters), ("crop", crop), ("batch", batch)):
        if value != RECIPE[name]:
            changes.append(f"{name} {value} (recipe {RECIPE[name]})")
    changed = {k: v for k, v in (cfg_options or {}).items() if not _NO_EFFECT.search(k)}
    if changed:
        changes.append("cfg-options " + ",".join(f"{k}={v}" for k, v in sorted(changed.items())))
    protocol = "modified" if changes else "published"
    if label:
        notes.insert(0, f"{label} run ({protocol} recipe otherwise)")
        protocol = label
    return {"protocol": protocol, "protocol_notes": "; ".join(notes + changes)}
