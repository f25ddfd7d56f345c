"""Which runs a campaign holds: the published Tables 14 / 15 (versions x their shipped configs) or a matrix file.

A `RunSpec` says what to run in the words of the `probes` flags; `probes.campaign.launch` turns it into the
command line, and the run itself (its config, identity, results) is decided by the same code as a hand-typed run.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from probes.config_files import config_dir, reference_dir
from probes.errors import ConfigError

TABLES = ("14", "15", "all")
SEG_DATASETS = {"ADE20K": "ade20k", "COCO-Stuff": "coco-stuff"}   # published name -> --dataset
CLASSIFY_KEYS = ("config", "probes", "image_size", "epochs", "batch_size", "lrs", "layers", "cfg_options")
SEGMENT_KEYS = ("datasets", "modes", "config", "iters", "batch_size", "crop_size", "strategy", "cfg_options")
MATRIX_KEYS = ("encoders", "classify", "segment")


@dataclass(frozen=True)
class RunSpec:
    """One run of a campaign, in the words of the `probes classify` / `probes segment` flags."""

    task: str                          # 'classify' | 'segment'
    encoder: str                       # the --encoder source
    version: str                       # the version it claims (the published one for a table), or its name
    table: Optional[str] = None        # '14' | '15' for a published cell, None for a matrix run
    dataset: str = "ImageNet"          # ImageNet | ADE20K | COCO-Stuff
    mode: Optional[str] = None         # segment: linear | head | full
    config: Optional[str] = None       # --config (a shipped name/path); None: the encoder's published one
    image_size: Optional[int] = None   # classify --image-size (None: the config's)
    flags: Tuple[Tuple[str, Any], ...] = ()   # other flags, e.g. (('--epochs', 1),)
    cfg_options: Tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """A stable, file-name-safe name of the run within its campaign (logs, locks, job names)."""
        from probes.run_identity import slug

        what = ([self.dataset.lower(), self.mode] if self.task == "segment"
                else [f"{self.image_size}px" if self.image_size else ""])
        # A table names its versions; a matrix its sources (two checkpoints may share an architecture).
        name = self.version if self.table else (Path(self.encoder.rstrip("/")).name or self.encoder)
        return "_".join(slug(p, 40) for p in (f"t{self.table}" if self.table else self.task, name, *what) if p)


def _reference_rows(name: str) -> List[Dict[str, str]]:
    with (reference_dir() / name).open(newline="") as handle:
        return list(csv.DictReader(handle))


def encoder_source(version: str, encoders: Optional[Path]) -> str:
    """A version's weights: `ENCODERS/<version>` when that folder exists, else its hub id (read from the HF cache)."""
    from probes.encoders.source import hub_id

    if encoders is not None and (Path(encoders) / version).is_dir():
        return str((Path(encoders) / version).resolve())
    return hub_id(version)


def table14_runs(encoders: Optional[Path] = None) -> List[RunSpec]:
    """Table 14: one `probes classify` run (both probes, one backbone pass) per published (version, input size)."""
    from probes.classification.config import published_config_for

    cells = dict.fromkeys((r["encoder_version"], int(r["image_size"]))
                          for r in _reference_rows("internvl2_5_table14_classification.csv"))
    runs = []
    for version, size in cells:
        path = published_config_for(version, size)
        if path is None:
            raise ConfigError(f"Table 14 lists {version} at {size}px but no shipped classification config names it")
        from probes.config_files import load_file

        if int(load_file(path).image_size) != size:
            raise ConfigError(f"Table 14 lists {version} at {size}px but its shipped config {path.name} is at "
                              f"{load_file(path).image_size}px")
        runs.append(RunSpec("classify", encoder_source(version, encoders), version, "14", config=path.stem,
                            image_size=size))
    return runs


def table15_runs(encoders: Optional[Path] = None) -> List[RunSpec]:
    """Table 15: one `probes segment` run per published (version, dataset, mode), each with its shipped config."""
    rows = _reference_rows("internvl2_5_table15_segmentation.csv")
    cells = dict.fromkeys((r["encoder_version"], r["dataset"], r["mode"]) for r in rows if r["dataset"] in SEG_DATASETS)
    runs = []
    for version, dataset, mode in cells:
        path = config_dir("segmentation") / version / f"{SEG_DATASETS[dataset]}_{mode}.py"
        if not path.is_file():
            raise ConfigError(f"Table 15 lists {version} {dataset} {mode} but {path} is not shipped")
        runs.append(RunSpec("segment", encoder_source(version, encoders), version, "15", dataset=dataset, mode=mode,
                            config=str(path)))
    return runs


def table_runs(table: str, encoders: Optional[Path] = None) -> List[RunSpec]:
    """The runs of `--table 14|15|all`."""
    if table not in TABLES:
        raise ConfigError(f"--table {table!r} is not one of {', '.join(TABLES)}")
    return ((table14_runs(encoders) if table in ("14", "all") else [])
            + (table15_runs(encoders) if table in ("15", "all") else []))


def _check_keys(found: Any, allowed: Sequence[str], where: str) -> Dict[str, Any]:
    if not isinstance(found, dict):
        raise ConfigError(f"{where} must be a mapping of {', '.join(allowed)}")
    unknown = sorted(set(found) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(allowed)})")
    return found


def _load(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"--matrix {path}: no such file")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"--matrix {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        return data or {}
    if path.suffix == ".py":
        from probes.config_files import load_file

        return {k: v for k, v in load_file(path).to_dict().items() if not k.startswith("_")}
    raise ConfigError(f"--matrix {path}: give a .yaml, .yml or .py file")


def _version_of(source: str) -> str:
    from probes.encoders.resolved import resolve_encoder

    try:
        return resolve_encoder(source).version_label
    except Exception:   # described lazily: a bad source is reported, in one line, when its run is planned
        return Path(source).name or source


def _options(value: Any, where: str) -> Tuple[str, ...]:
    if value in (None, []):
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, dict):
        return tuple(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    raise ConfigError(f"{where}.cfg_options: give KEY=VALUE strings (a list) or a mapping")


def matrix_runs(path: Path) -> List[RunSpec]:
    """The runs of a matrix file: every encoder x (classify) and x datasets x modes (segment)."""
    path = Path(path)
    data = _check_keys(_load(path), MATRIX_KEYS, f"--matrix {path}")
    encoders = data.get("encoders") or []
    if isinstance(encoders, str) or not encoders:
        raise ConfigError(f"--matrix {path}: `encoders` must be a non-empty list of encoder sources")
    if "classify" not in data and "segment" not in data:
        raise ConfigError(f"--matrix {path}: name at least one task (`classify:` and/or `segment:`)")
    runs: List[RunSpec] = []
    for source in (str(e) for e in encoders):
        version = _version_of(source)
        if "classify" in data:
            task = _check_keys(data["classify"] or {}, CLASSIFY_KEYS, f"--matrix {path}: classify")
            flags = tuple((f"--{k.replace('_', '-')}", ",".join(v) if k == "probes" and isinstance(v, list) else v)
                          for k, v in task.items() if k in ("probes", "epochs", "batch_size", "lrs", "layers")
                          and v is not None)
            size = task.get("image_size")
            runs.append(RunSpec("classify", source, version, dataset="ImageNet", config=task.get("config"),
                                image_size=int(size) if size else None, flags=flags,
                                cfg_options=_options(task.get("cfg_options"), "classify")))
        if "segment" in data:
            task = _check_keys(data["segment"] or {}, SEGMENT_KEYS, f"--matrix {path}: segment")
            flags = tuple((f"--{k.replace('_', '-')}", v) for k, v in task.items()
                          if k in ("iters", "batch_size", "crop_size", "strategy") and v is not None)
            names = {v: k for k, v in SEG_DATASETS.items()}
            for dataset in task.get("datasets") or list(SEG_DATASETS.values()):
                if dataset not in names:
                    raise ConfigError(f"--matrix {path}: segment dataset {dataset!r} is not one of "
                                      f"{', '.join(names)}")
                for mode in task.get("modes") or ["linear", "head", "full"]:
                    if mode not in ("linear", "head", "full"):
                        raise ConfigError(f"--matrix {path}: segment mode {mode!r} is not one of linear, head, full")
                    runs.append(RunSpec("segment", source, version, dataset=names[dataset], mode=mode,
                                        config=task.get("config"), flags=flags,
                                        cfg_options=_options(task.get("cfg_options"), "segment")))
    keys = [r.key for r in runs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError(f"--matrix {path}: two runs would share the name {twice[0]} (list each encoder once)")
    return runs
