"""The checks on a segmentation config and its overrides: each a one-line ConfigError naming the culprit."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from probes.errors import ConfigError


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


def lookup(tree: Any, key: str) -> Any:
    """The value at a dotted key, list items by index (`param_scheduler.1.end`)."""
    for part in key.split("."):
        tree = tree[int(part)] if isinstance(tree, (list, tuple)) else tree[part]
    return tree


def check_crop(crop: int, patch: int) -> None:
    """A crop must be a positive multiple of the encoder's patch size."""
    if crop <= 0 or crop % patch:
        raise ConfigError(f"--crop-size {crop} is not a positive multiple of the encoder's patch size {patch} "
                          f"(e.g. {max(patch, round(crop / patch) * patch)})")


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


def check_options_kept(cfg: Any, options: dict, patch: int) -> None:
    """An override that filling from the encoder replaced would run silently without it: refuse it instead."""
    for key, value in options.items():
        kept = lookup(cfg.to_dict(), key)
        same = (list(kept) if isinstance(kept, tuple) else kept) == (list(value) if isinstance(value, tuple)
                                                                     else value)
        if not same and not isinstance(value, dict):
            raise ConfigError(f"--cfg-options {key}={value!r} is set from the encoder (patch {patch}) to {kept!r}; "
                              "it cannot be overridden (use --crop-size or another encoder)")
