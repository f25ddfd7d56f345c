"""Classification configs: mmengine python files with `_base_`, resolved once into small frozen dataclasses.

The base recipe file (`configs/classification/_base_/probe_recipe.py`) lists every allowed key; a key it
does not define (a typo in a config file or in `--cfg-options`) is a ConfigError naming the key and the
closest valid one. Overrides go through mmengine (`DictAction` parsing, `merge_from_dict`), as in every
command. Each part of the run then receives only its own section (`EncoderSpec`, `DataSpec`, ...).
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Tuple

from probes.config_files import apply_options, check_keys, config_dir, load_file, resolve_config
from probes.encoders.versions import VERSIONS
from probes.errors import ConfigError

if TYPE_CHECKING:   # the type only: a config is loaded without the encoder stack
    from probes.encoders.resolved import ResolvedEncoder

BASE_CONFIG = config_dir("classification") / "_base_" / "probe_recipe.py"
# Keys whose values are open mappings (their inner keys are checked by the code that reads them).
OPEN_KEYS = ("data.paths",)
PRECISIONS = ("fp16", "bf16", "fp32")
PROBE_ALIASES = {"linear": "linear", "attn": "attention_pooling", "attention_pooling": "attention_pooling"}


@dataclass(frozen=True)
class EncoderSpec:
    """Which encoder to probe and how to hold it."""
    source: Optional[str]
    version: Optional[str]
    weights: Optional[str]
    revision: Optional[str]
    num_layers: Optional[int]
    dtype: Optional[str]


@dataclass(frozen=True)
class ImageSpec:
    """Input size and the evaluation resize (interpolation None = the encoder's own)."""
    size: int
    interpolation: Optional[str]
    crop_pct: Optional[float]


@dataclass(frozen=True)
class DataSpec:
    """Where the sets are and how partial or corrupt data is treated."""
    root: Optional[str]
    paths: Mapping[str, str]
    val_labels: Optional[str]
    test_sets: tuple
    allow_subset: bool
    on_corrupt: str
    heldout_per_class: int
    heldout_max_fraction: float
    train_per_class: Optional[int]
    workers: Optional[int]              # None: runtime.default_workers() where the loader is built
    decode: str
    crop_on: str


@dataclass(frozen=True)
class ProbeSpec:
    """Which heads the sweep trains (the published head always among them)."""
    probes: tuple
    lrs: tuple
    published_lr: float
    num_classes: int
    layers: Any

    @property
    def head_lrs(self) -> tuple:
        """The grid with the published lr added when missing (a run always trains the published head)."""
        return tuple(dict.fromkeys([float(self.published_lr), *map(float, self.lrs)]))


@dataclass(frozen=True)
class TrainRecipe:
    """The published training recipe (and any change to it)."""
    epochs: int
    batch_size: int
    eval_batch_size: Optional[int]
    lr_batch_ref: int
    momentum: float
    nesterov: bool
    weight_decay: float
    warmup_epochs: float
    clip_grad: Optional[float]
    ema_decay: float
    mixup: float
    cutmix: float
    mixup_switch_prob: float
    mixup_group: int
    smoothing: float
    scale: tuple
    ratio: tuple
    hflip: float
    seed: int
    seeds: int                          # replicas of every head; the rows are replica 0's
    precision: str
    eval_every_epoch: bool


@dataclass(frozen=True)
class CacheSpec:
    """The feature-cache protocol (no augmentation) and its scikit-learn baselines."""
    dir: Optional[str]
    store: tuple
    epochs: int
    batch_size: int
    train_per_class: Optional[int]
    knn: bool
    knn_k: int
    logreg: bool
    logreg_max_iter: int


@dataclass(frozen=True)
class RuntimeSpec:
    """Where and how the run happens (nothing here changes a number)."""
    device: Optional[str]
    out: str
    resume: bool
    overwrite: bool
    progress: bool
    log_interval_s: float
    protocol_label: Optional[str]


@dataclass(frozen=True)
class ClassifyConfig:
    """A resolved `probes classify` run."""
    encoder: EncoderSpec
    image: ImageSpec
    data: DataSpec
    probe: ProbeSpec
    train: TrainRecipe
    cache: CacheSpec
    runtime: RuntimeSpec
    source_file: Optional[Path] = field(default=None, compare=False)

    @property
    def cached(self) -> bool:
        """Whether heads train on cached features."""
        return bool(self.cache.dir)

    def as_dict(self) -> dict[str, Any]:
        """Every resolved value (for --print-config and a run's identity)."""
        out = asdict(self)
        out.pop("source_file")
        return out


def _tuple(value: Any) -> Any:
    return tuple(_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def _section(kind: type, values: Mapping[str, Any]) -> Any:
    return kind(**{k: _tuple(v) for k, v in values.items()})


def from_mmengine(cfg: Any, source_file: Optional[Path] = None) -> ClassifyConfig:
    """Build the frozen sections from a merged mmengine Config (every key already checked)."""
    d = cfg.to_dict()
    probes = tuple(dict.fromkeys(PROBE_ALIASES.get(p, p) for p in d["probe"]["probes"]))
    resolved = ClassifyConfig(
        encoder=_section(EncoderSpec, d["encoder"]),
        image=ImageSpec(d["image_size"], d["interpolation"], d["crop_pct"]),
        data=_section(DataSpec, {**d["data"], "paths": dict(d["data"]["paths"])}),
        probe=_section(ProbeSpec, {**d["probe"], "probes": probes}),
        train=_section(TrainRecipe, d["train"]),
        cache=_section(CacheSpec, d["cache"]),
        runtime=_section(RuntimeSpec, d["runtime"]),
        source_file=source_file)
    validate(resolved)
    return resolved


@functools.lru_cache(maxsize=1)
def published_configs() -> Tuple[Tuple[str, int, Path], ...]:
    """(version, image size, file) of every shipped config that names a published version (read from the files)."""
    found = []
    for path in sorted(config_dir("classification").glob("*.py")):
        cfg = load_file(path)
        version = cfg.get("encoder", {}).get("version")
        if version:
            found.append((str(version), int(cfg.image_size), path))
    return tuple(found)


def published_config_for(version: Optional[str], image_size: Optional[int] = None) -> Optional[Path]:
    """The published config of a version: at `image_size` when one is published there, else at its own size."""
    mine = [(size, path) for v, size, path in published_configs() if v == version]
    if not mine:
        return None
    native = VERSIONS[version].image_size if version in VERSIONS else None
    for wanted in (image_size, native):
        for size, path in mine:
            if size == wanted:
                return path
    return mine[0][1]


def load_config(name: Optional[str] = None, options: Optional[Mapping[str, Any]] = None,
                pick_published: bool = True, encoder: Optional[ResolvedEncoder] = None) -> ClassifyConfig:
    """A config file (name or path), then dotted-key `options` (mmengine merge).

    With no `name`, the run's `encoder` (resolved once, by `plan.plan_from_options`) picks the config: a published
    version (or an encoder with a published version's architecture) gets its own published config at its
    published resolution (or at `image_size` where one is published there); any other encoder, or none, gets the
    base recipe. An auto-picked config only brings its recipe: its `encoder.version` is not claimed for a source
    that does not name that version itself.
    """
    options = dict(options or {})
    reference = load_file(BASE_CONFIG).to_dict()
    picked = None
    if name is None and pick_published and encoder is not None:
        picked = published_config_for(encoder.published_architecture, options.get("image_size"))
    path = picked or resolve_config(name, "classification", default=BASE_CONFIG)
    cfg = load_file(path)
    if picked is not None and options.get("encoder.source"):
        cfg.encoder.version = None
    check_keys(_leaf_keys(cfg.to_dict()), reference, str(path), OPEN_KEYS)
    apply_options(cfg, options, "--cfg-options / command-line flags", OPEN_KEYS)
    return from_mmengine(cfg, None if path == BASE_CONFIG else path)


def _leaf_keys(tree: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        name = f"{prefix}{key}"
        keys += _leaf_keys(value, name + ".") if isinstance(value, Mapping) else [name]
    return keys


# What each annotation of the sections accepts (annotations are strings under `from __future__ import annotations`).
_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}


def _check_types(cfg: ClassifyConfig) -> None:
    """A value of the wrong type (`data.root=1`, `encoder.dtype=16`) is a one-line error naming the key."""
    import dataclasses

    for section in dataclasses.fields(cfg):
        if section.name == "source_file":
            continue
        part = getattr(cfg, section.name)
        for item in dataclasses.fields(part):
            annotation = str(item.type)
            optional = annotation.startswith("Optional[")
            accepted = _TYPES.get(annotation[len("Optional["):-1] if optional else annotation)
            value = getattr(part, item.name)
            if accepted is None or (optional and value is None):
                continue
            if not isinstance(value, accepted) or (bool not in accepted and isinstance(value, bool)):
                name = "image_size" if (section.name, item.name) == ("image", "size") else (
                    item.name if section.name == "image" else f"{section.name}.{item.name}")
                wanted = " or ".join(t.__name__ for t in accepted) + (" or None" if optional else "")
                raise ConfigError(f"{name} is {value!r} ({type(value).__name__}); expected {wanted}.")


def validate(cfg: ClassifyConfig) -> None:
    """Reject values no run can use, naming the key."""
    _check_types(cfg)
    for probe in cfg.probe.probes:
        if probe not in PROBE_ALIASES.values():
            raise ConfigError(f"probe.probes names unknown probe {probe!r}; choose linear or attention_pooling.")
    if not cfg.probe.lrs:
        raise ConfigError("probe.lrs is empty: give at least one learning rate.")
    if cfg.data.on_corrupt not in ("error", "skip"):
        raise ConfigError(f"data.on_corrupt is {cfg.data.on_corrupt!r}; use 'error' or 'skip'.")
    bad_store = set(cfg.cache.store) - {"pooled", "tokens"}
    if bad_store or not cfg.cache.store:
        raise ConfigError(f"cache.store is {list(cfg.cache.store)!r}; use 'pooled' and/or 'tokens'.")
    for key in ("epochs", "batch_size"):
        value = getattr(cfg.train, key)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"train.{key} must be a positive integer, not {value!r}.")
    if not isinstance(cfg.image.size, int) or cfg.image.size < 1:
        raise ConfigError(f"image_size must be a positive integer, not {cfg.image.size!r}.")
    if cfg.probe.num_classes != 1000:
        raise ConfigError("probe.num_classes must be 1000: every test set is scored on ImageNet-1K logits.")
    if cfg.train.precision not in PRECISIONS:
        raise ConfigError(f"train.precision is {cfg.train.precision!r}; use one of {', '.join(PRECISIONS)}.")
    if cfg.train.mixup_group < 2 or cfg.train.mixup_group % 2:
        raise ConfigError(f"train.mixup_group must be an even number of images (Mixup pairs them), "
                          f"not {cfg.train.mixup_group!r}.")
    if cfg.train.seeds < 1:
        raise ConfigError(f"train.seeds must be a positive integer (training replicas per head), not {cfg.train.seeds!r}.")
    if not 0 < cfg.data.heldout_max_fraction < 1:
        raise ConfigError(f"data.heldout_max_fraction must be in (0, 1), not {cfg.data.heldout_max_fraction!r}.")
