"""A `probes classify` run decided once: its resolved values, its id and its protocol words.

`plan_classify` reads config files only (never weights or images). The run executes the plan, `--print-config`
prints it, and the run writes it into `OUT/plans/<run_id>.json`; no second code path decides any of these.
The protocol words come from a diff of every number-shaping value against the plan the published config for the
same encoder would give (`probes.protocol` holds the short list of what does not shape numbers).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from probes.classification.config import BASE_CONFIG, ClassifyConfig, load_config, published_config_for
from probes.classification.pipeline import Preprocessing
from probes.classification.sweep import head_specs
from probes.config_files import config_dir, dump_config
from probes.encoders.resolved import ResolvedEncoder, resolve_encoder
from probes.errors import ConfigError
from probes.protocol import ProtocolWords, number_shaping, protocol_words, recipe_changes
from probes.results import CACHED_PROTOCOL
from probes.run_identity import make_run_id, plan_json
from probes.runtime import device_type


@dataclass(frozen=True)
class ClassifyPlan:
    """Everything a classify run will do, as decided before any weight or image is read."""

    cfg: ClassifyConfig
    encoder: ResolvedEncoder
    device: str                       # 'cpu' or 'cuda'
    precision: str                    # what the heads and encoder compute in on that device
    preprocessing: Preprocessing
    blocks_used: int
    extra_layers: Tuple[int, ...]
    heads: Tuple[str, ...]
    data_root: str                    # resolved real path ('' when not given)
    data_paths: Dict[str, str]        # each set's resolved real path
    config_file: str                  # the config file the values came from
    published_config: str             # the published config the recipe was compared with
    values: Dict[str, Any]            # every resolved value (what identity and protocol are computed from)
    protocol: ProtocolWords
    run_id: str

    @property
    def cached(self) -> bool:
        """Whether heads train on cached features."""
        return self.cfg.cached

    def as_dict(self) -> Dict[str, Any]:
        """The plan as plain data: what `--print-config` prints and the run writes beside its rows."""
        pre = self.preprocessing
        info = self.encoder.info
        return {
            "run_id": self.run_id, **self.protocol.as_row(),
            "config_file": self.config_file, "published_config": self.published_config,
            "encoder": {"source": self.encoder.canonical, "fingerprint": self.encoder.fingerprint,
                        "version": self.encoder.version_label, "random_weights": self.encoder.random_weights,
                        "embed_dim": info.embed_dim, "blocks_used": self.blocks_used,
                        "blocks_in_checkpoint": info.num_layers, "patch_size": info.patch_size},
            "device": self.device, "precision": self.precision,
            "preprocessing": {"size": pre.size, "interpolation": pre.interpolation, "crop_pct": pre.crop_pct,
                              "mean": list(pre.mean), "std": list(pre.std)},
            "heads": list(self.heads), "extra_layers": list(self.extra_layers),
            "published_head": f"lr {self.cfg.probe.published_lr:g}, raw weights, final epoch, block {self.blocks_used}",
            "seeds": {"replicas": self.cfg.train.seeds, "rows": "replica 0 (the head a 1-seed run trains)",
                      "replicas_differ_in": replicas_differ_in(self.cached)},
            "data": {"root": self.data_root, "paths": dict(self.data_paths)},
            "config": _plain(self.cfg.as_dict()),
        }


def replicas_differ_in(cached: bool) -> str:
    """What a head's training replicas differ in (the live backbone pass, augmentation included, is shared)."""
    return "initialisation and data order" if cached else "initialisation (the backbone pass and its augmentation are shared)"


def seeds_fact(seeds: int, cached: bool) -> str:
    """The protocol note of a run with training replicas: what the rows score, where the replicas are."""
    return (f"{seeds} training replicas of every head, differing in {replicas_differ_in(cached)}; rows score "
            "replica 0 (the head a 1-seed run trains), the side file holds every replica of the kept heads")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _real(path: Path) -> str:
    return os.path.realpath(path.expanduser())


def _data_location(cfg: ClassifyConfig) -> Tuple[str, Dict[str, str]]:
    if not cfg.data.root:
        return "", {}
    root = Path(cfg.data.root).expanduser()
    paths = {name: _real(Path(value) if Path(value).is_absolute() else root / value)
             for name, value in sorted(cfg.data.paths.items())}
    if cfg.data.val_labels:
        paths["val_labels"] = _real(Path(cfg.data.val_labels))
    return _real(root), paths


def resolved_values(cfg: ClassifyConfig, encoder: ResolvedEncoder, device: str) -> Dict[str, Any]:
    """Every value of a run with the encoder's own filled in; spellings replaced by what they name."""
    info = encoder.info
    pre = Preprocessing.resolve(cfg.image, {"mean": info.mean, "std": info.std, "interpolation": info.interpolation,
                                            "crop_pct": info.crop_pct})
    values = _plain(cfg.as_dict())
    # The encoder by its weights, not its spelling.
    values["encoder"] = {"num_layers": cfg.encoder.num_layers or info.num_layers, "dtype": cfg.encoder.dtype,
                         "version": cfg.encoder.version}
    values["image"] = {"size": pre.size, "interpolation": pre.interpolation, "crop_pct": pre.crop_pct,
                       "mean": list(pre.mean), "std": list(pre.std)}
    root, paths = _data_location(cfg)
    values["data"] = {**values["data"], "root": root, "paths": paths, "val_labels": None}
    if not cfg.cached:
        values.pop("cache")   # a live run reads no cache key
    values["effective"] = {"precision": cfg.train.precision if device == "cuda" else "fp32", "device": device,
                           "cached": cfg.cached}
    values["identity"] = {"encoder": encoder.canonical, "weights": encoder.fingerprint or encoder.canonical}
    return values


def named_encoder(source: Optional[str], version: Optional[str], weights: Optional[str] = None,
                  revision: Optional[str] = None) -> ResolvedEncoder:
    """The encoder a config names: `source` (claiming `version` when given), else the published `version` by name."""
    if not source and not version:
        raise ConfigError("encoder.source is not set (pass --encoder SRC).")
    return resolve_encoder(str(source or version), version=version if source else None, weights=weights,
                           revision=revision)


def parse_layers(value: Any, num_layers: int) -> List[int]:
    """`probe.layers`: None, a list of blocks counted from 1, or 'every:K' (K, 2K, ... below the last)."""
    if value in (None, "", [], ()):
        return []
    if isinstance(value, str) and value.startswith("every:"):
        step = int(value.split(":", 1)[1])
        layers = list(range(step, num_layers, step))
    elif isinstance(value, (list, tuple)):
        layers = [int(v) for v in value]
    else:
        raise ConfigError(f"probe.layers={value!r}: give a list of blocks (counted from 1) or 'every:K'.")
    bad = [v for v in layers if not 1 <= v <= num_layers]
    if bad:
        raise ConfigError(f"probe.layers {bad} outside 1..{num_layers} (the encoder's blocks in use).")
    # The last block is the standard heads' own: extra heads only on the others.
    return sorted(set(layers) - {num_layers})


def plan_classify(cfg: ClassifyConfig, encoder: Optional[ResolvedEncoder] = None) -> ClassifyPlan:
    """Resolve a run from its config and its encoder's description (no weights or images are read).

    `encoder`: the encoder `cfg` names, already resolved (`plan_from_options`); else it is resolved here.
    """
    if encoder is None:
        encoder = named_encoder(cfg.encoder.source, cfg.encoder.version, cfg.encoder.weights, cfg.encoder.revision)
    device = device_type(cfg.runtime.device)
    values = resolved_values(cfg, encoder, device)
    blocks = int(values["encoder"]["num_layers"])
    layers = tuple(parse_layers(cfg.probe.layers, blocks))
    specs = head_specs(cfg.probe.probes, cfg.probe.head_lrs, layers, cfg.probe.published_lr, cfg.train.seeds)
    reference = published_config_for(encoder.published_architecture, cfg.image.size)
    published = load_config(reference or BASE_CONFIG, {}, pick_published=False)
    published_values = resolved_values(published, encoder, "cuda")
    config_file, published_config = _name(cfg.source_file or BASE_CONFIG), _name(reference or BASE_CONFIG)
    facts = [f"recipe compared with {published_config}" if reference else
             f"no published probe of this encoder's architecture: recipe compared with {published_config}",
             f"held-out split: {cfg.data.heldout_per_class} per class, at most {cfg.data.heldout_max_fraction:g}"
             " of a class, " + ("left out of every head's training (cached)" if cfg.cached else
                                "left out of the grid heads' loss; the published head trains on every image")]
    if cfg.cached:
        facts.append("features cached once; heads trained on them with no augmentation")
    if cfg.train.seeds > 1:
        facts.append(seeds_fact(cfg.train.seeds, cfg.cached))
    words = protocol_words(recipe_changes(values, published_values), facts, cfg.runtime.protocol_label,
                           CACHED_PROTOCOL if cfg.cached else None, random_weights=encoder.random_weights)
    probes = "+".join(p.replace("attention_pooling", "attn") for p in cfg.probe.probes)
    run_id = make_run_id(encoder.name, [f"{cfg.image.size}px", probes, "cached" if cfg.cached else "live"],
                         number_shaping(values))
    pre = values["image"]
    data_root, data_paths = values["data"]["root"], values["data"]["paths"]
    return ClassifyPlan(cfg, encoder, device, values["effective"]["precision"],
                        Preprocessing(pre["size"], pre["interpolation"], pre["crop_pct"], tuple(pre["mean"]),
                                      tuple(pre["std"])),
                        blocks, layers, tuple(s.key for s in specs), data_root, data_paths,
                        config_file, published_config, values, words, run_id)


def describe_plan(plan: ClassifyPlan, fmt: str = "py") -> str:
    """`--print-config`: the run's plan (resolved config, encoder, preprocessing, heads, run id, protocol) as py or json."""
    from mmengine.config import Config

    values = plan.as_dict()
    return plan_json(values).rstrip("\n") if fmt == "json" else dump_config(Config(values), fmt)


def plan_from_options(name: Optional[str], options: Mapping[str, Any]) -> ClassifyPlan:
    """`probes classify`'s plan from `--config` and the flags' dotted-key options, its encoder resolved once.

    Without `--config` the encoder the options name picks the published config, and it is the encoder that config
    then names (a published config sets only `encoder.version`, which a named source replaces): it is handed on.
    """
    encoder = None
    if name is None and (options.get("encoder.source") or options.get("encoder.version")):
        encoder = named_encoder(options.get("encoder.source"), options.get("encoder.version"),
                                options.get("encoder.weights"), options.get("encoder.revision"))
    return plan_classify(load_config(name, options, encoder=encoder), encoder)


def _name(path: Optional[Path]) -> str:
    if path is None:
        return ""
    root = config_dir("classification")
    try:
        return str(Path(path).resolve().relative_to(root.resolve()).with_suffix(""))
    except ValueError:
        return str(path)

