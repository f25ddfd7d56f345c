"""Fill a segmentation config from the encoder and the CLI choices (crop, iters, data), and name the protocol."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Optional

from probes.errors import ConfigError
from probes.protocol import ProtocolWords, protocol_words
from probes.segmentation.datasets import DatasetSpec
from probes.encoders import EncoderInfo


@functools.lru_cache(maxsize=None)
def recipe() -> dict[str, int]:
    """The released recipe's sizes, read from the shipped generic config (never restated in code).

    `iters`, `crop`, `stride`, total `batch`, `warmup` iterations and the `patch` its sizes are multiples of.
    """
    from probes.config_files import config_dir, load_file

    cfg = load_file(config_dir("segmentation") / "ade20k_head.py")
    divisor = [t["size_divisor"] for t in cfg.val_dataloader.dataset.pipeline if t["type"] == "ResizeToMultiple"]
    # mmengine's LinearLR reaches its end factor at step `end - 1` (schedule_80k.py).
    return {"iters": int(cfg.train_cfg.max_iters), "crop": int(cfg.model.test_cfg.crop_size[0]),
            "stride": int(cfg.model.test_cfg.stride[0]), "batch": int(cfg.train_dataloader.batch_size),
            "warmup": int(cfg.param_scheduler[0]["end"]) - 1, "patch": int(divisor[0])}


# Top-level names a config file uses to build its loaders and model: after loading, the run reads the copies
# (the right-hand keys), so an override of the template would change nothing and is refused.
TEMPLATES = {"train_pipeline": "train_dataloader.dataset.pipeline",
             "test_pipeline": "val_dataloader.dataset.pipeline", "crop_size": "--crop-size",
             "data_root": "--data", "dataset_type": "train_dataloader.dataset.type",
             "data_preprocessor": "model.data_preprocessor", "norm_cfg": "model.decode_head.norm_cfg"}


def check_not_template(keys: Any) -> None:
    """An override of a template name is a one-line error naming what the run reads instead."""
    for key in keys:
        root = str(key).split(".")[0]
        if root in TEMPLATES:
            raise ConfigError(f"--cfg-options {key}: `{root}` is the config file's template, copied when the file "
                              f"loads; the run reads {TEMPLATES[root]} (override that instead)")


def check_module_kwargs(cfg: Any, keys: Any) -> None:
    """An override of a module's argument its class does not take is a one-line error now, not at build time."""
    import inspect

    import mmseg.registry as registries

    from probes.segmentation.mm_compat import import_mmseg

    import_mmseg()   # our own modules (ProbeEncoder, hooks) registered too
    tree = cfg.to_dict()
    for key in keys:
        parent, _, name = str(key).rpartition(".")
        # Only modules MODELS builds from their dict as it stands: `*_cfg` dicts (norm_cfg) and the optimizer
        # wrapper go through builders that take keys of their own (requires_grad, constructor, paramwise_cfg).
        if not parent.startswith("model") or parent.endswith("_cfg"):
            continue
        try:
            module = lookup(tree, parent) if parent else tree
        except (KeyError, IndexError, ValueError, TypeError):
            continue
        if not (isinstance(module, dict) and isinstance(module.get("type"), str)):
            continue
        accepted = [_arguments(c) for c in (getattr(registries, n).get(module["type"]) for n in dir(registries)
                                            if n.isupper()) if inspect.isclass(c)]
        if accepted and not any(a is None or name in a for a in accepted):
            raise ConfigError(f"--cfg-options {key}: {module['type']} takes no argument {name!r} "
                              f"(it takes {', '.join(sorted(accepted[0]))})")


def _arguments(cls: type) -> Optional[set[str]]:
    """The keyword arguments a class's constructor takes, following `**kwargs` up its bases (None: any).

    A constructor that takes `**kwargs` hands them to its base (mmseg's heads to BaseDecodeHead), so the
    names accumulate until a constructor without `**kwargs`.
    """
    import inspect

    import torch

    names: set[str] = set()
    for base in cls.__mro__:
        if base in (object, torch.nn.Module) or "__init__" not in vars(base):
            continue
        params = inspect.signature(base.__init__).parameters
        names |= {n for n, p in params.items() if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return names
    return None   # `**kwargs` all the way up: what it accepts is not knowable from signatures


def shaping_hooks(hooks: Any) -> list:
    """The hooks that can change a run's numbers: all but those whose class says `shapes_numbers = False`.

    The suite's own hooks (checkpointing, evaluation history, the non-finite stop) only save, record or stop;
    a user's hook (EMAHook, ...) is taken to shape the numbers unless its class says otherwise.
    """
    from mmseg.registry import HOOKS

    from probes.segmentation.mm_compat import import_mmseg

    import_mmseg()
    kept = []
    for hook in hooks or []:
        kind = hook.get("type") if isinstance(hook, dict) else hook
        cls = HOOKS.get(kind) if isinstance(kind, str) else kind
        if cls is None:
            raise ConfigError(f"custom_hooks: no hook type {kind!r} is registered (a typo, or its module is "
                              "missing from custom_imports)")
        if getattr(cls, "shapes_numbers", True):
            kept.append(hook)
    return kept


def lookup(tree: Any, key: str) -> Any:
    """The value at a dotted key, list items by index (`param_scheduler.1.end`)."""
    for part in key.split("."):
        tree = tree[int(part)] if isinstance(tree, (list, tuple)) else tree[part]
    return tree


def published_crop(patch: int) -> int:
    """The recipe's crop (504 for patch 14); for another patch size the nearest multiple (512 for 16)."""
    return max(patch, round(recipe()["crop"] / patch) * patch)


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
    sizes = recipe()
    stride = max(1, round(crop * sizes["stride"] / sizes["crop"]))
    cfg.model.test_cfg.update(crop_size=(crop, crop), stride=(stride, stride))
    cfg.model.backbone.input_size = crop


def set_iters(cfg: Any, iters: int) -> None:
    """Shorten (or lengthen) the schedule keeping its shape: warm-up scales with the run."""
    if iters <= 0:
        raise ConfigError(f"--iters {iters} must be positive")
    sizes = recipe()
    warmup = max(1, min(iters - 1, round(sizes["warmup"] * iters / sizes["iters"])))
    cfg.train_cfg.max_iters = iters
    warm, poly = cfg.param_scheduler
    # mmengine's Linear/Poly schedulers reach their end value at step `end - 1` (schedule_80k.py).
    warm.end, poly.begin, poly.end = warmup + 1, 0, iters + 1
    checkpoint = cfg.default_hooks.checkpoint
    # At least every tenth of the run (the recipe's 1,000 of 80,000 is 1.25%): a killed short run keeps most of
    # its work for --resume instead of starting again from iteration 0.
    checkpoint.interval = min(checkpoint.interval, max(1, iters // 10))


def set_data(cfg: Any, spec: DatasetSpec, root: Optional[Path], workers: Optional[int]) -> None:
    """Point the loaders at `root` (when given); set the class count of every head."""
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        dl = cfg[loader]
        if root is not None:
            dl.dataset.data_root = str(root)
        if workers is not None:
            dl.num_workers = workers
            dl.persistent_workers = workers > 0
    model = cfg.get("model") or {}  # a dataset-only config (a _base_/datasets file) has no heads
    for head in ("decode_head", "auxiliary_head"):
        if model.get(head) is not None:
            model[head].num_classes = spec.num_classes
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


def protocol_words_of(cfg: Any, changes: list[str], patch: int, crop: int, label: Optional[str] = None,
                      random_weights: bool = False) -> ProtocolWords:
    """The row's `protocol` and notes: which recipe was compared with, and every change from its plan."""
    source = cfg.get("recipe_source")
    facts = [f"released recipe {source}" if source else
             "InternViT-6B recipe applied by this suite (no recipe was released for this encoder)"]
    sizes = recipe()
    if patch != sizes["patch"] and crop == published_crop(patch):
        facts.append(f"crop {crop}: the recipe's {sizes['crop']} at the nearest multiple of patch {patch}")
    if cfg.optim_wrapper.get("paramwise_cfg", {}).get("exempt_embeddings_from_decay"):
        facts.append("exempt_embeddings_from_decay: the released runs decay the position embedding and class token")
    return protocol_words(changes, facts, label, random_weights=random_weights)
