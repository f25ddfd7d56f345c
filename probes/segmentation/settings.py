"""Fill a segmentation config from the encoder and the CLI choices (crop, iters, data), and name the protocol."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Optional

from probes.errors import ConfigError
from probes.protocol import ProtocolWords, protocol_words
from probes.segmentation.datasets import DatasetSpec
from probes.encoders import EncoderInfo

# The released recipe (all 30 InternVL-MMDetSeg configs): what a row's `protocol` is measured against.
RECIPE = {"iters": 80000, "crop": 504, "batch": 16, "warmup": 1500, "stride": 322, "patch": 14}
# Keys that cannot change a result (loading, logging, hooks, checkpoint and validation cadence): they are
# not protocol changes and not part of a run's identity.
_NO_EFFECT = re.compile(r"(num_workers|persistent_workers|pin_memory|^default_hooks|^custom_hooks|^log_|^visualizer"
                        r"|^vis_backends|^env_cfg|^train_cfg\.val_interval$|^work_dir$|^launcher$|^resume$"
                        r"|^load_from$|^custom_imports$)")


def run_defining(cfg: Any) -> dict:
    """The resolved config without the keys that cannot change a result (a run's identity hashes this)."""
    def keep(node: Any, prefix: str) -> Any:
        if isinstance(node, Mapping):
            return {k: keep(v, f"{prefix}{k}.") for k, v in node.items() if not _NO_EFFECT.search(f"{prefix}{k}")}
        return node
    return keep(cfg.to_dict(), "")


def published_crop(patch: int) -> int:
    """The recipe's 504 crop for patch 14; for another patch size the nearest multiple (512 for 16)."""
    return max(patch, round(RECIPE["crop"] / patch) * patch)


def check_crop(crop: int, patch: int) -> None:
    """A crop must be a positive multiple of the encoder's patch size."""
    if crop <= 0 or crop % patch:
        raise ConfigError(f"--crop-size {crop} is not a positive multiple of the encoder's patch size {patch} "
                          f"(e.g. {max(patch, round(crop / patch) * patch)})")


def _transforms(cfg: Any) -> list[dict]:
    found = []
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        dataset = cfg.get(loader, {}).get("dataset", {})
        found += list(dataset.get("pipeline", []))
    return found


def set_crop(cfg: Any, crop: int, patch: int) -> None:
    """Every crop-dependent key: pad size, rescale range, random crop, test resize, window, position grid."""
    check_crop(crop, patch)
    cfg.crop_size = (crop, crop)
    cfg.model.data_preprocessor.size = (crop, crop)
    if "data_preprocessor" in cfg:
        cfg.data_preprocessor.size = (crop, crop)
    for t in _transforms(cfg):
        if t["type"] == "RandomResize":
            t["scale"] = (4 * crop, crop)   # the recipe's (2016, 504)
        elif t["type"] == "RandomCrop":
            t["crop_size"] = (crop, crop)
        elif t["type"] == "ResizeShortestEdge":
            t["scale"] = crop
    stride = max(1, round(crop * RECIPE["stride"] / RECIPE["crop"]))
    cfg.model.test_cfg.update(crop_size=(crop, crop), stride=(stride, stride))
    cfg.model.backbone.input_size = crop


def set_iters(cfg: Any, iters: int) -> None:
    """Shorten (or lengthen) the schedule keeping its shape: warm-up scales with the run."""
    if iters <= 0:
        raise ConfigError(f"--iters {iters} must be positive")
    warmup = max(1, min(iters - 1, round(RECIPE["warmup"] * iters / RECIPE["iters"])))
    cfg.train_cfg.max_iters = iters
    warm, poly = cfg.param_scheduler
    # mmengine's Linear/Poly schedulers reach their end value at step `end - 1` (schedule_80k.py).
    warm.end, poly.begin, poly.end = warmup + 1, 0, iters + 1
    checkpoint = cfg.default_hooks.checkpoint
    checkpoint.interval = min(checkpoint.interval, iters)


def set_data(cfg: Any, spec: DatasetSpec, root: Optional[Path], workers: Optional[int]) -> None:
    """Point the loaders at `root` (when given); set the class count of every head."""
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        dl = cfg[loader]
        if root is not None:
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
    """Linear: the last block; pyramid: four evenly spaced blocks ending at the last (our choice)."""
    if mode == "linear":
        return [num_layers - 1]
    step = num_layers / 4
    return [round(step * (k + 1)) - 1 for k in range(4)]


def _fill(model: Any, part: str, key: str, value: Any, info: EncoderInfo, what: str) -> None:
    if part not in model or model[part] is None:
        return
    current = model[part].get(key)
    if current is None:
        model[part][key] = value
    elif current != value and not (isinstance(current, (list, tuple)) and list(current) == value):
        raise ConfigError(f"model.{part}.{key}={current} does not match the encoder's {what} "
                          f"({value}); remove it from the config or pick another --config")


def fill_encoder(cfg: Any, mode: str, info: EncoderInfo) -> None:
    """Fill None-valued width/depth/patch/normalisation keys from the encoder; reject contradictions."""
    model = cfg.model
    backbone = model.backbone
    depth = backbone.get("num_layers") or info.num_layers
    if backbone.get("out_indices") is None:
        backbone.out_indices = default_indices(mode, depth)
    _fill(model, "neck", "embed_dim", info.embed_dim, info, "width")
    _fill(model, "auxiliary_head", "in_channels", info.embed_dim, info, "width")
    width = info.embed_dim if mode == "linear" else [info.embed_dim] * 4
    _fill(model, "decode_head", "in_channels", width, info, "width")
    # The encoder's own normalisation (0..255 units), never a hard-coded ImageNet one.
    for pre in (model.data_preprocessor, cfg.get("data_preprocessor")):
        if pre is not None:
            if pre.get("mean") is None:
                pre.mean = [round(255 * v, 4) for v in info.mean]
            if pre.get("std") is None:
                pre.std = [round(255 * v, 4) for v in info.std]
    for t in _transforms(cfg):
        if t["type"] == "ResizeToMultiple":
            t["size_divisor"] = info.patch_size
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


def protocol_of(cfg: Any, iters: int, crop: int, batch: int, patch: int, cfg_options: Mapping[str, Any],
                user_config: Optional[Path] = None, label: Optional[str] = None) -> ProtocolWords:
    """The row's `protocol` (published | modified, or `label`) and notes naming the recipe and every change."""
    source = cfg.get("recipe_source")
    facts = [f"released recipe {source}" if source else
             "InternViT-6B recipe applied by this suite (no recipe was released for this encoder)"]
    changes = [f"user config {user_config}"] if user_config is not None else []
    expected_crop = published_crop(patch)
    if patch != RECIPE["patch"] and crop == expected_crop:
        facts.append(f"crop {crop}: the recipe's {RECIPE['crop']} at the nearest multiple of patch {patch}")
    for name, value, recipe in (("iters", iters, RECIPE["iters"]), ("crop", crop, expected_crop),
                                ("batch", batch, RECIPE["batch"])):
        if value != recipe:
            changes.append(f"{name} {value} (recipe {recipe})")
    if cfg.optim_wrapper.get("paramwise_cfg", {}).get("exempt_embeddings_from_decay"):
        changes.append("exempt_embeddings_from_decay (released runs decay pos/cls embeddings)")
    changed = {k: v for k, v in (cfg_options or {}).items() if not _NO_EFFECT.search(k)}
    if changed:
        changes.append("cfg-options " + ",".join(f"{k}={v}" for k, v in sorted(changed.items())))
    return protocol_words(changes, facts, label)
