"""One `probes classify` run: load the encoder and data, train the sweep, score, write result rows."""
from __future__ import annotations

import datetime as _dt
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

import torch
from timm.loss import SoftTargetCrossEntropy
from torch import nn

from probes.classification import datasets as ds
from probes.classification.distributed import (DistInfo, all_reduce_sum, broadcast_from_main,
                                                init_distributed)
from probes.classification.heads import PROBE_ALIASES
from probes.classification.metrics import Top1Table
from probes.classification.results import append_rows
from probes.classification.sweep import HeadBank, SweepTrainer, head_specs
from probes.classification.training import LoopSettings, evaluate_sweep, fingerprint, train_sweep
from probes.errors import ConfigError, DatasetError
from probes.runtime import autocast_for

log = logging.getLogger(__name__)
# The published recipe: a live run that keeps all of it is `protocol=published`.
PUBLISHED = {"epochs": 10, "batch_size": 1024, "mixup": 0.8, "cutmix": 1.0, "smoothing": 0.1,
             "warmup_epochs": 1, "clip_grad": 5.0, "ema_decay": 0.998}


@dataclass
class Data:
    """The splits of one run."""
    train: ds.ImageSet
    heldout: ds.ImageSet
    tests: List[ds.ImageSet]


def load_data(cfg: Mapping[str, Any]) -> Data:
    """Train (minus the held-out split) and every test set present under data.root."""
    dcfg = cfg["data"]
    if not dcfg["root"]:
        raise ConfigError("data.root is not set (pass --data ROOT).")
    root = Path(dcfg["root"]).expanduser()
    if not root.is_dir():
        raise DatasetError(f"data root {root} does not exist.")
    paths = dcfg["paths"]
    unknown = set(paths) - {"train", *ds.TEST_SETS}
    if unknown:
        raise ConfigError(f"data.paths has unknown set(s) {sorted(unknown)}.")
    full = ds.read_train(ds._path(root, paths["train"]), dcfg["allow_subset"])
    train, heldout = ds.split_heldout(full, dcfg["heldout_per_class"], cfg["train"]["seed"],
                                      dcfg["train_per_class"])
    tests = ds.load_test_sets(root, paths, dcfg["test_sets"], dcfg["allow_subset"], dcfg["val_labels"])
    if not tests:
        log.warning("no test set found under %s: only the held-out split will be scored", root)
    return Data(train, heldout, tests)


def load_probe_encoder(cfg: Mapping[str, Any], device: torch.device) -> nn.Module:
    """The frozen encoder named by ``encoder.*``."""
    from probes.encoders import load_encoder, parse_source

    ecfg = cfg["encoder"]
    if not ecfg["source"]:
        raise ConfigError("encoder.source is not set (pass --encoder SRC).")
    # A version in the config names a plain path's architecture; parse_source checks it against the others.
    source = parse_source(str(ecfg["source"]), version=ecfg["version"], weights=ecfg["weights"],
                          revision=ecfg.get("revision"))
    return load_encoder(source, num_layers=ecfg["num_layers"], dtype=ecfg["dtype"], device=device)


def protocol_of(cfg: Mapping[str, Any], cached: bool) -> tuple[str, str]:
    """(protocol, notes): `published`, `modified` (notes list each change) or `cached`."""
    tcfg, ccfg = cfg["train"], cfg["cache"]
    if cached:
        changes = [f"epochs={ccfg['epochs']}", f"batch_size={ccfg['batch_size']}", "no augmentation"]
        if ccfg["train_per_class"]:
            changes.append(f"cache.train_per_class={ccfg['train_per_class']}")
    else:
        changes = [f"{k}={tcfg[k]}" for k, v in PUBLISHED.items() if tcfg[k] != v]
    if cfg["data"]["train_per_class"]:
        changes.append(f"train_per_class={cfg['data']['train_per_class']}")
    protocol = "cached" if cached else ("modified" if changes else "published")
    # The held-out split always leaves the training set (our addition, so it is always stated).
    notes = changes + [f"heldout_per_class={cfg['data']['heldout_per_class']}"]
    label = cfg["runtime"].get("protocol_label")
    if label:
        notes.insert(0, f"{label} run ({protocol} recipe otherwise)")
        protocol = label
    return protocol, "; ".join(notes)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80]


def _rows(cfg, encoder, data: Data, specs_or_names, tables: Dict[str, Top1Table], heldout: Top1Table,
          protocol: str, notes: str, epochs: int, skipped: Mapping[str, int],
          baseline: bool = False) -> List[Dict[str, Any]]:
    """One row per (head, ema, test set); the best (lr, ema) per probe on held-out is `selected`."""
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    entries = [(name, None, False) for name in specs_or_names] if baseline else \
        [(s.key, s, ema) for s in specs_or_names for ema in (False, True)]
    best: Dict[str, tuple] = {}
    for key, spec, ema in entries:
        probe = key if baseline else spec.probe
        top, _ = heldout.top1(key, ema, "heldout")
        if probe not in best or top > best[probe][0]:
            best[probe] = (top, key, ema)
    rows = []
    for key, spec, ema in entries:
        probe = key if baseline else spec.probe
        for image_set in data.tests:
            for score in image_set.scores:
                top1, n = tables[image_set.name].top1(key, ema, score)
                rows.append({
                    "encoder": str(cfg["encoder"]["source"]), "encoder_version": encoder.version,
                    "probe": probe, "lr": "" if baseline else spec.lr, "ema": ema, "test_set": score,
                    "n_images": n, "top1": round(top1, 3), "epochs": epochs,
                    "image_size": cfg["image_size"], "protocol": protocol, "protocol_notes": notes,
                    "subset": bool(image_set.subset.get(score) or data.train.subset["train"]),
                    "selected": best[probe][1:] == (key, ema),
                    "heldout_top1": round(heldout.top1(key, ema, "heldout")[0], 3),
                    "n_skipped": skipped.get(image_set.name, 0), "date": date})
    return rows


def _reduce_skipped(skipped: Mapping[str, int], names: Sequence[str], dist: DistInfo) -> Dict[str, int]:
    counts = torch.tensor([float(skipped.get(n, 0)) for n in names], dtype=torch.float64)
    counts = all_reduce_sum(counts, dist)
    return {n: int(c) for n, c in zip(names, counts.tolist())}


def run_classify(cfg: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Run the whole probe sweep described by ``cfg``; return (and append to the CSV) its rows."""
    dist = init_distributed(cfg["runtime"]["device"])
    data = load_data(cfg)
    encoder = load_probe_encoder(cfg, dist.device)
    probes = list(dict.fromkeys(PROBE_ALIASES[p] for p in cfg["probe"]["probes"]))
    specs = head_specs(probes, cfg["probe"]["lrs"])
    torch.manual_seed(cfg["train"]["seed"])  # identical head init on every rank and every resume
    bank = HeadBank(specs, encoder.embed_dim, encoder.num_heads, encoder.num_prefix_tokens,
                    cfg["probe"]["num_classes"]).to(dist.device)
    autocast = lambda: autocast_for(dist.device)  # noqa: E731 - a fresh context per use
    cached = bool(cfg["cache"]["dir"])
    from probes.classification.live import LiveSource

    live = LiveSource(encoder, data.train, cfg, dist, bank.need_tokens, bank.need_pooled, autocast)
    source = live
    stores = {}
    if cached:
        source, stores = _cached_source(cfg, encoder, data, live, dist, bank, probes)
    elif live.iters_per_epoch == 0:
        raise DatasetError(f"train at {data.train.root} has {len(data.train)} training images, fewer "
                           f"than one batch of {live.batch} per process (lower --batch-size).")
    epochs = cfg["cache"]["epochs"] if cached else cfg["train"]["epochs"]
    batch = cfg["cache"]["batch_size"] if cached else cfg["train"]["batch_size"]
    model = bank
    if dist.world > 1:
        model = nn.parallel.DistributedDataParallel(
            bank, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
    tcfg = cfg["train"]
    trainer = SweepTrainer(bank, total_batch=batch, iters_per_epoch=source.iters_per_epoch,
                           epochs=epochs, warmup_epochs=tcfg["warmup_epochs"], momentum=tcfg["momentum"],
                           nesterov=tcfg["nesterov"], weight_decay=tcfg["weight_decay"],
                           clip_grad=tcfg["clip_grad"], ema_decay=tcfg["ema_decay"],
                           lr_batch_ref=tcfg["lr_batch_ref"], model=model)
    out = Path(cfg["runtime"]["out"])
    run_id = _slug(f"{encoder.version}_{cfg['image_size']}px_{'cached' if cached else 'live'}")
    settings = {k: cfg[k] for k in ("encoder", "image_size", "interpolation", "probe", "train")}
    settings.update(data={k: v for k, v in cfg["data"].items() if k != "workers"},
                    cache=cfg["cache"] if cached else None, world=dist.world)
    loop = LoopSettings(epochs=epochs, seed=tcfg["seed"], checkpoint=out / "checkpoints" / f"{run_id}.pth",
                        fingerprint=fingerprint(settings), resume=bool(cfg["runtime"]["resume"]),
                        show_progress=bool(cfg["runtime"]["progress"]))
    train_sweep(trainer, source, SoftTargetCrossEntropy(), loop, dist, autocast)
    broadcast_from_main(bank, dist)
    broadcast_from_main(trainer.ema.module, dist)

    show = loop.show_progress
    heldout = evaluate_sweep(trainer, source, data.heldout, ("heldout",), dist, autocast, show)
    tables = {s.name: evaluate_sweep(trainer, source, s, s.scores, dist, autocast, show) for s in data.tests}
    skipped = _reduce_skipped(source.n_skipped, [s.name for s in data.tests], dist)
    protocol, notes = protocol_of(cfg, cached)
    rows = _rows(cfg, encoder, data, specs, tables, heldout, protocol, notes, epochs, skipped)
    if cached and dist.is_main and (cfg["cache"]["knn"] or cfg["cache"]["logreg"]):
        rows += _baseline_rows(cfg, encoder, data, stores, notes, skipped)
    if dist.is_main:
        path = append_rows(rows, out)
        log.info("%d result rows appended to %s", len(rows), path)
        log_summary(rows)
    return rows


def _cached_source(cfg, encoder, data: Data, live, dist, bank, probes):
    from probes.classification.cache import CachedSource, build_store, check_store_kinds

    kinds = list(cfg["cache"]["store"])
    check_store_kinds(kinds, probes)
    # One folder per encoder checkpoint and resolution, so several encoders can share a cache dir.
    where = fingerprint({"source": str(getattr(encoder, "source", "")), "layers": encoder.num_layers})[:8]
    root = Path(cfg["cache"]["dir"]) / _slug(f"{encoder.version}_{cfg['image_size']}px_{where}")
    per_class = cfg["cache"]["train_per_class"]
    if per_class:
        data.train = _limit_per_class(data.train, int(per_class))
    stores = {}
    for image_set in [data.train, data.heldout, *data.tests]:
        stores[image_set.name] = build_store(root / _slug(image_set.name), image_set, live, cfg, dist, kinds)
    source = CachedSource(stores, data.train, cfg, dist, bank.need_tokens, bank.need_pooled)
    return source, stores


def _limit_per_class(image_set: ds.ImageSet, per_class: int) -> ds.ImageSet:
    seen: Dict[int, int] = {}
    keep = []
    for i, t in enumerate(image_set.targets):
        if seen.get(t, 0) < per_class:
            seen[t] = seen.get(t, 0) + 1
            keep.append(i)
    return ds.ImageSet(image_set.name, image_set.root, [image_set.files[i] for i in keep],
                       [image_set.targets[i] for i in keep], subset=dict(image_set.subset))


def _baseline_rows(cfg, encoder, data: Data, stores, notes: str, skipped) -> List[Dict[str, Any]]:
    from probes.classification.baselines import fit_baselines, pooled_matrix, score_baselines

    rows, x = pooled_matrix(stores["train"])
    y = [data.train.targets[i] for i in rows]
    models = fit_baselines(x, y, cfg)
    num_classes = cfg["probe"]["num_classes"]
    heldout = score_baselines(models, stores["heldout"], data.heldout, ("heldout",), num_classes)
    tables = {s.name: score_baselines(models, stores[s.name], s, s.scores, num_classes) for s in data.tests}
    return _rows(cfg, encoder, data, list(models), tables, heldout, "cached", notes, "", skipped,
                 baseline=True)


def log_summary(rows: Sequence[Mapping[str, Any]]) -> None:
    """Log the held-out-selected head of each probe: every set, their average, and Δ."""
    averages = {}
    for probe in dict.fromkeys(r["probe"] for r in rows):
        chosen = [r for r in rows if r["probe"] == probe and r["selected"]]
        if not chosen:
            continue
        sets = " ".join(f"{r['test_set']}={r['top1']:.2f}" for r in chosen)
        averages[probe] = sum(r["top1"] for r in chosen) / len(chosen)
        log.info("%s (lr %s, ema %s, held-out %.2f): %s avg=%.2f", probe, chosen[0]["lr"],
                 chosen[0]["ema"], chosen[0]["heldout_top1"], sets, averages[probe])
    if "linear" in averages and "attention_pooling" in averages:
        log.info("delta (attention_pooling - linear) = %+.2f",
                 averages["attention_pooling"] - averages["linear"])
