"""One `probes classify` run: data and encoder, the head sweep, per-epoch scores, rows and the side file."""
from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from timm.loss import SoftTargetCrossEntropy
from torch import nn

from probes.classification import datasets as ds
from probes.classification.baselines import baseline_tables
from probes.classification.cache import cached_source
from probes.classification.config import ClassifyConfig, DataSpec
from probes.classification.distributed import DistInfo, init_distributed
from probes.classification.live import LiveSource
from probes.classification.metrics import Top1Table
from probes.classification.pipeline import Preprocessing, decode_protocol_note
from probes.classification.plan import ClassifyPlan, plan_classify
from probes.classification.predictions import kept_heads, write_run_predictions
from probes.classification.rows import RunFacts, baseline_rows, head_rows, is_published, select_heads
from probes.classification.sweep import HeadBank, SweepTrainer, head_specs
from probes.classification.training import LoopSettings, evaluate_sweep, fingerprint, train_sweep
from probes.encoders import load_encoder
from probes.encoders.checkpoint import stored_float_dtypes
from probes.encoders.resolved import ResolvedEncoder
from probes.errors import ConfigError, DatasetError
from probes.interrupts import Interrupt, RunInterrupted, SignalGuard, signal_of
from probes.io import write_atomic
from probes.results import (CLASSIFICATION_COLUMNS, EPOCH_COLUMNS, GRID_HEAD, PUBLISHED_HEAD, append_rows,
                             run_finished)
from probes.run_identity import check_rerun, write_plan
from probes.runtime import autocast_for

log = logging.getLogger(__name__)
RESULTS_FILE = "classification_results.csv"

@dataclass
class Data:
    """The splits of one run."""
    train: ds.ImageSet
    heldout: ds.ImageSet
    tests: List[ds.ImageSet]


def load_data(data: DataSpec, seed: int, cache_per_class: Optional[int] = None) -> Data:
    """Train (minus the held-out split, at most `cache_per_class` per class) and every test set present."""
    if not data.root:
        raise ConfigError("data.root is not set (pass --data ROOT).")
    root = Path(data.root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"data root {root} does not exist.")
    unknown = set(data.paths) - {"train", *ds.TEST_SETS}
    if unknown:
        raise ConfigError(f"data.paths has unknown set(s) {sorted(unknown)}.")
    full = ds.read_train(ds.resolve_path(root, data.paths["train"]), data.allow_subset)
    train, heldout = ds.split_heldout(full, data.heldout_per_class, seed, data.train_per_class,
                                      data.heldout_max_fraction)
    if cache_per_class:
        train = ds.limit_per_class(train, int(cache_per_class))
    tests = ds.load_test_sets(root, data.paths, data.test_sets, data.allow_subset, data.val_labels)
    if not tests:
        log.warning("no test set found under %s: only the held-out split will be scored", root)
    return Data(train, heldout, tests)


def storage_dtype(dtype: Optional[str], precision: str, device: torch.device, encoder: ResolvedEncoder) -> Any:
    """The frozen encoder's weight dtype: never a lossy cast of the checkpoint's values.

    fp16 (the official protocol) keeps fp32 weights under fp16 autocast, as the official run; bf16 stores
    bf16 on GPU (half the memory) unless the checkpoint the plan found holds fp16 values, which bf16 would
    round (then fp32); fp32 stores fp32. `encoder.dtype` in the config (``dtype``) wins.
    """
    if dtype is not None:
        return dtype
    if precision != "bf16" or device.type != "cuda":
        return "float32"
    return "float32" if torch.float16 in stored_float_dtypes(encoder.checkpoint) else "bfloat16"


def load_probe_encoder(plan: ClassifyPlan, dtype: Any, device: torch.device) -> nn.Module:
    """The frozen encoder the plan resolved (its source is parsed once, in the plan)."""
    return load_encoder(plan.encoder.source, num_layers=plan.cfg.encoder.num_layers, dtype=dtype, device=device,
                        checkpoint=plan.encoder.checkpoint)


def _skipped(source: Any, names: Sequence[str], dist: DistInfo) -> Dict[str, int]:
    """Files left out per set ('train' = the training images, held-out split included), said once in the log."""
    counts = source.skipped_counts(["train", *names])
    if dist.is_main and any(counts.values()):
        log.warning("data.on_corrupt='skip' left out unreadable files: %s (counted in the rows' n_skipped and "
                    "n_skipped_train)", ", ".join(f"{n} {c}" for n, c in counts.items() if c))
    return counts


def _interrupted(exc: BaseException, checkpoint: Path, epochs: int) -> RunInterrupted:
    """What an interrupted run left: the checkpoint of its last finished epoch, if any."""
    if not checkpoint.is_file():
        return RunInterrupted(signal_of(exc), None)
    done = torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True)["epoch"]
    return RunInterrupted(signal_of(exc), checkpoint, f"epoch {done} of {epochs}")


def run_classify(cfg: ClassifyConfig, plan: Optional[ClassifyPlan] = None) -> List[Dict[str, Any]]:
    """Run the whole probe sweep the plan of ``cfg`` describes; return (and append to the CSV) its rows."""
    plan = plan or plan_classify(cfg)
    dist = init_distributed(cfg.runtime.device)
    out = Path(cfg.runtime.out)
    # A finished or interrupted run is refused before any weight or image is read.
    run_id = plan.run_id
    results = out / RESULTS_FILE
    checkpoint = out / "checkpoints" / f"{run_id}.pth"
    if check_rerun(run_id, run_finished(results, run_id), cfg.runtime.resume, cfg.runtime.overwrite, str(results),
                   interrupted=checkpoint if checkpoint.is_file() else None):
        log.info("run %s is already finished in %s: nothing to do", run_id, results)
        return []
    if cfg.runtime.overwrite and checkpoint.is_file() and not cfg.runtime.resume:
        checkpoint.unlink()   # --overwrite starts the run again from its first step
    if dist.is_main:
        write_plan(out / "plans" / f"{run_id}.json", plan.as_dict())
    data = load_data(cfg.data, cfg.train.seed, cfg.cache.train_per_class if cfg.cached else None)
    precision = plan.precision
    if dist.device.type != plan.device:
        raise ConfigError(f"the plan was made for {plan.device} but the run is on {dist.device.type}")
    dtype = storage_dtype(cfg.encoder.dtype, precision, dist.device, plan.encoder)
    encoder = load_probe_encoder(plan, dtype, dist.device)
    specs = head_specs(cfg.probe.probes, cfg.probe.head_lrs, plan.extra_layers, cfg.probe.published_lr,
                       cfg.train.seeds)
    torch.manual_seed(cfg.train.seed)  # identical head init on every rank and every resume
    bank = HeadBank(specs, encoder.embed_dim, encoder.num_heads, encoder.num_prefix_tokens,
                    cfg.probe.num_classes, seed=cfg.train.seed).to(dist.device)
    autocast: Callable[[], Any] = lambda: autocast_for(dist.device, precision)  # noqa: E731 - fresh per use
    pre = plan.preprocessing
    _check_preprocessing(pre, encoder.data_config)
    # Live: every training image passes the backbone; the held-out ones feed only the published heads.
    every_image, heldout_flags = ds.with_heldout(data.train, data.heldout)
    live = LiveSource(encoder, every_image, pre, cfg.train, cfg.data, cfg.probe.num_classes, dist, bank.needs,
                      autocast, heldout=heldout_flags)
    source, stores = live, {}
    if cfg.cached:
        source, stores = cached_source(cfg, encoder, data.train, data.heldout, data.tests, live, dist, bank.needs)
    elif live.iters_per_epoch == 0:
        raise DatasetError(f"train at {data.train.root} has {len(every_image)} training images, fewer than one "
                           f"batch of {live.batch} per process (lower --batch-size).")
    epochs = cfg.cache.epochs if cfg.cached else cfg.train.epochs
    model = bank if dist.world == 1 else nn.parallel.DistributedDataParallel(
        bank, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
    t = cfg.train
    trainer = SweepTrainer(bank, total_batch=cfg.cache.batch_size if cfg.cached else t.batch_size,
                           iters_per_epoch=source.iters_per_epoch, epochs=epochs, warmup_epochs=t.warmup_epochs,
                           momentum=t.momentum, nesterov=t.nesterov, weight_decay=t.weight_decay,
                           clip_grad=t.clip_grad, ema_decay=t.ema_decay, lr_batch_ref=t.lr_batch_ref, model=model,
                           loss_scaling=precision == "fp16", autocast=autocast)
    loop = LoopSettings(epochs=epochs, seed=t.seed, checkpoint=checkpoint,
                        fingerprint=fingerprint({"run": run_id, "world": dist.world}), resume=cfg.runtime.resume,
                        show_progress=cfg.runtime.progress, log_interval_s=cfg.runtime.log_interval_s,
                        eval_every_epoch=t.eval_every_epoch)
    sets = [data.heldout, *data.tests]

    def evaluate(final: bool) -> List[Tuple[ds.ImageSet, Top1Table]]:
        return [(s, evaluate_sweep(trainer, source, s, s.scores, dist, loop.show_progress, record=final,
                                   log_interval_s=loop.log_interval_s)) for s in sets]

    # Each finished epoch is checkpointed atomically; a Ctrl-C or SIGTERM leaves that one (the epoch under way is
    # lost: resuming inside an epoch would replay its data order and augmentation draws) and says how to resume.
    try:
        with SignalGuard():
            history, final = train_sweep(trainer, source, SoftTargetCrossEntropy(), loop, dist, evaluate)
    except (Interrupt, KeyboardInterrupt) as exc:
        raise _interrupted(exc, checkpoint, epochs) from None
    heldout, tests = final[0][1], final[1:]
    skipped = _skipped(source, [s.name for s in data.tests], dist)
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    decode_protocol_note(cfg.data.decode, dist.device)   # refuses gpu decode off CUDA
    facts = RunFacts(run_id, plan.encoder.canonical, plan.encoder.version_label, encoder.num_layers, epochs,
                     cfg.image.size, precision, plan.protocol, bool(data.train.subset["train"]),
                     f"predictions/{run_id}.npz", date, cfg.train.seeds)
    rows = head_rows(facts, specs, tests, heldout, history, skipped, cfg.probe.published_lr)
    if cfg.cached and dist.is_main and (cfg.cache.knn or cfg.cache.logreg):
        names, base_heldout, base_tests = baseline_tables(cfg.cache, cfg.probe.num_classes, data.train, data.heldout,
                                                          data.tests, stores)
        rows += baseline_rows(facts, names, base_tests, base_heldout, skipped)
    if dist.is_main:
        chosen = select_heads(specs, heldout).values()
        published = [(s.key, False) for s in specs if is_published(s, False)]
        keep = kept_heads(specs, chosen, published, encoder.num_layers)
        write_run_predictions(out / facts.predictions, tests, final[0], keep)
        write_epoch_scores(out / "epochs" / f"{run_id}.csv", run_id, specs, history)
        path = append_rows(results, rows, CLASSIFICATION_COLUMNS, replace_run=run_id if cfg.runtime.overwrite else None)
        log.info("%d result rows appended to %s", len(rows), path)
        log_summary(rows)
    return rows


def _check_preprocessing(planned: Preprocessing, data_config: Mapping[str, Any]) -> None:
    """The loaded encoder must normalise as its description said (the plan was made from the description)."""
    loaded = (tuple(float(v) for v in data_config["mean"]), tuple(float(v) for v in data_config["std"]))
    if loaded != (tuple(map(float, planned.mean)), tuple(map(float, planned.std))):
        raise ConfigError(f"the loaded encoder normalises with mean/std {loaded}, but its description said "
                          f"{(tuple(planned.mean), tuple(planned.std))}; its preprocessor_config.json and weights "
                          "disagree")


def write_epoch_scores(path: Path, run_id: str, specs, history) -> None:
    """Each evaluated epoch's top-1 per head and set (the official loop's log), beside the results.

    Replica 0 of each head only (the heads the rows score).
    """
    by_key = {s.key: s for s in specs if not s.replica}

    def write(handle) -> None:
        handle.write(",".join(EPOCH_COLUMNS) + "\n")
        for epoch, scores in sorted(history.by_epoch.items()):
            for (key, ema, score), top1 in sorted(scores.items()):
                if key not in by_key:
                    continue
                spec = by_key[key]
                head = PUBLISHED_HEAD if spec.published else GRID_HEAD
                handle.write(f"{run_id},{epoch},{spec.probe},{head},{spec.lr:g},{ema},{spec.layer or ''},{score},"
                             f"{top1:.3f}\n")

    write_atomic(path, write)


def log_summary(rows: Sequence[Mapping[str, Any]]) -> None:
    """Log, per probe, the published head and the held-out-selected one: every set, their average, and Δ.

    The average follows the report's rule (`results.set_average`): over all six test sets, or — with
    the missing sets named, never a mean of the sets that happen to be there.
    """
    import math

    from probes.results import missing_sets, set_average

    averages = {}
    for probe in dict.fromkeys(r["probe"] for r in rows):
        for kind, pick in (("published", lambda r: r.get("head") == "published"), ("selected", lambda r: r["selected"])):
            chosen = [r for r in rows if r["probe"] == probe and pick(r) and r["layer"] == rows[0]["layer"]]
            if not chosen:
                continue
            sets = " ".join(f"{r['test_set']}={r['top1']:.2f}" for r in chosen)
            top1 = {r["test_set"]: r["top1"] for r in chosen}
            averages[(probe, kind)] = set_average(top1)
            missing = missing_sets(top1)
            average = (f"avg={averages[(probe, kind)]:.2f}" if not missing
                       else f"avg=— (no {', '.join(missing)}; the average needs all six sets)")
            held = chosen[0]["heldout_top1"]
            log.info("%s %s head (lr %s, ema %s, held-out %s): %s %s", probe, kind, chosen[0]["lr"],
                     chosen[0]["ema"], "not scored" if held is None else f"{held:.2f}", sets, average)
    for kind in ("published", "selected"):
        if ("linear", kind) in averages and ("attention_pooling", kind) in averages:
            delta = averages[("attention_pooling", kind)] - averages[("linear", kind)]
            log.info("delta (attention_pooling - linear), %s heads = %s", kind,
                     "— (an average is incomplete)" if math.isnan(delta) else f"{delta:+.2f}")
