"""Config files for every task: where they live, how `--cfg-options` apply, and typo checks.

Both tasks use mmengine's own machinery: `Config.fromfile` (python files with `_base_`), `DictAction`
to parse `KEY=VALUE` items (so `x=None` is None and `x=none` the string 'none' in every command), and
`Config.merge_from_dict` to apply them.
"""
from __future__ import annotations

import argparse
import ast
import difflib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from probes.errors import ConfigError

_PACKAGE = Path(__file__).resolve().parent


def config_dir(task: str) -> Path:
    """The shipped configs of `task` ('classification' or 'segmentation'): package data, so a plain
    `pip install` has them; the checkout's top-level `configs/` is a link to the same folder."""
    return _PACKAGE / "configs" / task


def reference_dir() -> Path:
    """The published reference tables (package data; `results/reference/` in the checkout links here)."""
    return _PACKAGE / "reference"


def resolve_config(name: Optional[str | Path], task: str, default: Optional[Path] = None) -> Path:
    """A config path: a file, or a bare name (e.g. ``internvit_6b_224px``) looked up among the shipped ones."""
    if name is None:
        if default is None:
            raise ConfigError(f"no {task} config given")
        path = default
    else:
        path = Path(name)
        if not path.is_file() and not path.suffix:
            path = config_dir(task) / f"{name}.py"
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist.")
    return path


def load_file(path: Path) -> Any:
    """An mmengine Config from a python config file; a broken file is one ConfigError naming it."""
    from mmengine.config import Config  # imported here: the CLI must start fast

    try:
        return Config.fromfile(str(path))
    except Exception as exc:  # mmengine raises many types (SyntaxError, KeyError, ...) for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ConfigError(f"config file {path} cannot be loaded ({type(exc).__name__}: {first}).") from None


def parse_cfg_options(items: Optional[Sequence[str]]) -> dict[str, Any]:
    """``["a.b=1", "c=[1,2]"]`` -> ``{"a.b": 1, "c": [1, 2]}`` with mmengine's DictAction rules."""
    from mmengine.config import DictAction

    if not items:
        return {}
    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--cfg-options item {item!r} is not of the form key=value.")
    # DictAction cannot read module dicts (`dict(type='EMAHook')`) as config files write them: those go
    # through a literal reader of our own that accepts dict(...) calls, lists, tuples and python literals.
    modules = [item for item in items if "dict(" in item.partition("=")[2]]
    namespace = argparse.Namespace(options={})
    plain = [item for item in items if item not in modules]
    if plain:
        DictAction(option_strings=["--cfg-options"], dest="options")(None, namespace, plain)
    options = dict(namespace.options)
    for item in modules:
        key, _, text = item.partition("=")
        try:
            options[key.strip()] = _literal(ast.parse(text.strip(), mode="eval").body)
        except (SyntaxError, ValueError):
            raise ConfigError(f"--cfg-options {key.strip()}: cannot read {text.strip()!r} (python literals and "
                              "dict(key=value, ...) only).") from None
    return options


def _literal(node: ast.AST) -> Any:
    """A python literal where modules may be written `dict(key=value, ...)`, as in config files."""
    if isinstance(node, ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args
                and all(k.arg for k in node.keywords)):
            raise ValueError("only dict(key=value, ...) calls are understood")
        return {k.arg: _literal(k.value) for k in node.keywords}
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    return ast.literal_eval(node)


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        flat[name] = value
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            # mmengine merges `param_scheduler.1.end` into a list's element (allow_list_keys).
            flat.update(_flatten({str(i): v for i, v in enumerate(value)}, name + "."))
    return flat


def check_keys(keys: Iterable[str], reference: Mapping[str, Any], where: str,
               open_keys: Iterable[str] = (), module_kwargs_open: bool = False) -> None:
    """Every dotted key must exist in `reference`: an unknown key is a typo, named with the closest one.

    Keys under an `open_keys` mapping are free (their reader checks them); with `module_kwargs_open`,
    new keys under a dict that has a `type` (a module's constructor kwargs) are allowed too, because
    the constructor itself rejects a wrong one.
    """
    known = _flatten(reference)
    opened = tuple(open_keys)
    for key in keys:
        if key in known or any(key == k or key.startswith(k + ".") for k in opened):
            continue
        parent = key.rpartition(".")[0]
        if module_kwargs_open and isinstance(known.get(parent), Mapping) and "type" in known[parent]:
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown config key {key!r} in {where}{hint}.")


def apply_options(cfg: Any, options: Mapping[str, Any], where: str = "--cfg-options",
                  open_keys: Iterable[str] = (), module_kwargs_open: bool = False) -> None:
    """Check the keys against `cfg` and merge them in (mmengine's `merge_from_dict`)."""
    if not options:
        return
    check_keys(options, cfg.to_dict(), where, open_keys, module_kwargs_open)
    cfg.merge_from_dict(dict(options))


def dump_config(cfg: Any, fmt: str = "py") -> str:
    """The fully resolved config as mmengine's python text or as JSON."""
    if fmt == "json":
        return json.dumps(cfg.to_dict(), indent=2, default=str, sort_keys=False)
    return cfg.pretty_text
