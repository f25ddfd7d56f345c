"""Classification configs: mmengine python files with ``_base_``, checked against the base recipe.

The base recipe file lists every allowed key; a key it does not define (a typo in a config file or
in ``--cfg-options``) is a ConfigError naming the key and the closest valid one.
"""
from __future__ import annotations

import ast
import difflib
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from probes.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "classification"
BASE_CONFIG = CONFIG_DIR / "_base_" / "probe_recipe.py"
# Keys whose values are open mappings (their inner keys are checked by the code that reads them).
_OPEN_KEYS = {"data.paths"}


def resolve_config_path(name: Optional[str]) -> Path:
    """A config file path; a bare name such as ``internvit_6b_224px`` is looked up in configs/."""
    if name is None:
        path = BASE_CONFIG
    else:
        path = Path(name)
        if not path.is_file() and not path.suffix:
            path = CONFIG_DIR / f"{name}.py"
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist.")
    return path


def _load_file(path: Path) -> Dict[str, Any]:
    from mmengine.config import Config  # imported here: the CLI must start fast

    try:
        return Config.fromfile(str(path)).to_dict()
    except Exception as exc:  # mmengine raises many types (SyntaxError, KeyError, ...) for bad files
        raise ConfigError(f"config file {path} cannot be loaded ({type(exc).__name__}: {exc}).") from None


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and name not in _OPEN_KEYS:
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _check_keys(given: Iterable[str], allowed: Iterable[str], where: str) -> None:
    allowed = set(allowed)
    for key in given:
        if key not in allowed and not any(key.startswith(k + ".") for k in _OPEN_KEYS):
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown config key {key!r} in {where}{hint}.")


def _set(tree: Dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def parse_value(text: str) -> Any:
    """A ``--cfg-options`` value: a python literal (numbers, lists, tuples, None, True) or a string."""
    lowered = text.strip().lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_options(options: Iterable[str]) -> List[Tuple[str, Any]]:
    """``["train.epochs=3", ...]`` -> ``[("train.epochs", 3), ...]``."""
    pairs = []
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--cfg-options item {item!r} is not of the form key=value.")
        pairs.append((key.strip(), parse_value(value)))
    return pairs


def load_config(path: Optional[str] = None, overrides: Iterable[Tuple[str, Any]] = ()) -> Dict[str, Any]:
    """The base recipe, updated by a config file, then by ``overrides`` (dotted keys) in order."""
    base = _load_file(BASE_CONFIG)
    allowed = _flatten(base)
    cfg = base
    if path is not None:
        file = resolve_config_path(path)
        loaded = _load_file(file)
        flat = _flatten(loaded)
        _check_keys(flat, allowed, str(file))
        cfg = _load_file(BASE_CONFIG)
        for key, value in flat.items():
            _set(cfg, key, value)
    for key, value in overrides:
        _check_keys([key], allowed, "--cfg-options / command-line flags")
        _set(cfg, key, value)
    _validate(cfg)
    return cfg


def _validate(cfg: Mapping[str, Any]) -> None:
    from probes.classification.heads import PROBE_ALIASES

    for probe in cfg["probe"]["probes"]:
        if probe not in PROBE_ALIASES:
            raise ConfigError(f"probe.probes names unknown probe {probe!r}; choose linear or attention_pooling.")
    if not cfg["probe"]["lrs"]:
        raise ConfigError("probe.lrs is empty: give at least one learning rate.")
    if cfg["data"]["on_corrupt"] not in ("error", "skip"):
        raise ConfigError(f"data.on_corrupt is {cfg['data']['on_corrupt']!r}; use 'error' or 'skip'.")
    bad_store = set(cfg["cache"]["store"]) - {"pooled", "tokens"}
    if bad_store or not cfg["cache"]["store"]:
        raise ConfigError(f"cache.store is {cfg['cache']['store']!r}; use 'pooled' and/or 'tokens'.")
    for key in ("epochs", "batch_size"):
        value = cfg["train"][key]
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"train.{key} must be a positive integer, not {value!r}.")
    if not isinstance(cfg["image_size"], int) or cfg["image_size"] < 1:
        raise ConfigError(f"image_size must be a positive integer, not {cfg['image_size']!r}.")
    if cfg["probe"]["num_classes"] != 1000:
        raise ConfigError("probe.num_classes must be 1000: every test set is scored on ImageNet-1K logits.")
