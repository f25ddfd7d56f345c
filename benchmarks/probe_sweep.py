"""Cost of the one-pass sweep and of the feature cache, measured in one run on the same data.

(a) ``sweep_cost_ratio``: a training step of 16 heads (linear + attention pooling × 8 lrs) on one
    backbone pass, divided by the same step with one linear head. Goal ≤ 1.15.
(b) ``cache_speedup``: one training epoch (16 heads) recomputing the backbone from the images,
    divided by the same epoch read from the feature cache. Goal ≥ 20.

The backbone is a random-weight, 300M-shaped InternViT (C 1024, 16 heads, MLP 4096) at 224px with
fewer blocks (``--depth``), written as a Hugging Face folder and loaded with ``probes.load_encoder``.
The last printed line is exactly ``sweep_cost_ratio=X.XX cache_speedup=Y.Y``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import tempfile
import time
from pathlib import Path

import torch
from timm.data.mixup import mixup_target
from timm.loss import SoftTargetCrossEntropy

from probes import load_encoder
from probes.classification.cache import CachedSource, build_store
from probes.classification.config import load_config
from probes.classification.datasets import read_train
from probes.classification.distributed import DistInfo
from probes.classification.live import LiveSource, Preprocessing, backbone_features
from probes.testing.imagenet_data import shared_a_r_classes, write_imagenet_root
from probes.classification.sweep import HeadBank, SweepTrainer, head_specs
from probes.encoders import VERSIONS
from probes.runtime import autocast_for
from probes.testing.checkpoints import random_internvit, save_hf_folder

LRS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]


def _trainer(specs, enc, iters: int, batch: int, autocast=None) -> SweepTrainer:
    torch.manual_seed(0)
    bank = HeadBank(specs, enc.embed_dim, enc.num_heads, enc.num_prefix_tokens)
    return SweepTrainer(bank, total_batch=batch, iters_per_epoch=iters, epochs=1000, autocast=autocast)


def measure_step_ratio(enc, batches, reps: int, autocast) -> tuple[float, float, float]:
    """Fastest (backbone + step) time of 16 heads and of 1 head, alternated to share the noise.

    The minimum, not the mean: on a shared machine other processes only ever add time.
    """
    loss = SoftTargetCrossEntropy()
    many = _trainer(head_specs(["linear", "attention_pooling"], LRS), enc, 100, len(batches[0][0]), autocast)
    one = _trainer(head_specs(["linear"], [0.1]), enc, 100, len(batches[0][0]), autocast)
    times = {"many": [], "one": []}

    def step(trainer, images, soft):
        start = time.perf_counter()
        feats = backbone_features(enc, images, trainer.bank.needs, autocast)
        trainer.step(feats, soft, loss)
        return time.perf_counter() - start

    for i in range(reps + 1):
        images, soft = batches[i % len(batches)]
        for name, trainer in (("one", one), ("many", many)) if i % 2 else (("many", many), ("one", one)):
            t = step(trainer, images, soft)
            if i > 0:  # the first round warms up allocators and kernels
                times[name].append(t)
    m, o = min(times["many"]), min(times["one"])
    return m / o, m, o


def timed_epoch(trainer: SweepTrainer, source, epoch: int) -> float:
    """Wall time of one training epoch of ``trainer`` fed by ``source``."""
    loss = SoftTargetCrossEntropy()
    start = time.perf_counter()
    for feats, soft, keep in source.train_batches(epoch):
        trainer.step(feats, soft, loss, keep)
    return time.perf_counter() - start


def main() -> None:
    """Run both measurements and print the summary line last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CPU-sized run (< 3 minutes)")
    parser.add_argument("--depth", type=int, help="backbone blocks (default 10 quick, 24 full)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int,
                        help="torch CPU threads (default: 1 with --quick on CPU, else torch's choice)")
    parser.add_argument("--record", type=Path, help="append the measurement to this markdown file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # On a shared 2-core machine an OpenMP barrier waiting for a descheduled thread made small
    # ops up to 100x slower here (the neighbour gets measured, not the code): --quick uses one thread.
    threads = args.threads or (1 if args.quick and args.device in (None, "cpu") else None)
    if threads:
        torch.set_num_threads(threads)
    depth = args.depth or (10 if args.quick else 24)
    reps = 4 if args.quick else 10
    live_epochs = 1 if args.quick else 3
    train_per_class = 4 if args.quick else 16
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        arch = VERSIONS["InternViT-300M-448px"].replace(num_hidden_layers=depth, image_size=args.image_size)
        save_hf_folder(random_internvit(arch, seed=0).state_dict(), arch, tmp / "encoder")
        classes = shared_a_r_classes(4)
        write_imagenet_root(tmp / "data", classes, train_per_class=train_per_class + 1,
                            size=(args.image_size + 32, args.image_size), sets=("train",), quirks=False)
        cfg = load_config(None, {
            "image_size": args.image_size, "data.allow_subset": True, "data.workers": 0,
            "train.batch_size": args.batch, "cache.batch_size": args.batch,
            "cache.store": ["pooled", "tokens"], "runtime.progress": False})
        enc = load_encoder(str(tmp / "encoder"), dtype="float32" if args.device in (None, "cpu") else None,
                           device=args.device or "cpu")
        device = next(enc.parameters()).device
        autocast = lambda: autocast_for(device, "bf16")  # noqa: E731

        dist = DistInfo(0, 1, device)
        train = read_train(tmp / "data" / "train", allow_subset=True)
        probe_bank = HeadBank(head_specs(["linear", "attention_pooling"], LRS), enc.embed_dim,
                              enc.num_heads, enc.num_prefix_tokens)
        pre = Preprocessing.resolve(cfg.image, enc.data_config)
        live = LiveSource(enc, train, pre, cfg.train, cfg.data, 1000, dist, probe_bank.needs, autocast)

        # (a) the same augmented batches for both bank sizes
        batches = []
        for feats_batch in _image_batches(live, 3):
            batches.append(feats_batch)
        ratio, t_many, t_one = measure_step_ratio(enc, batches, reps, autocast)

        # (b) one epoch live vs one epoch from the cache, 16 heads each
        store = build_store(tmp / "cache" / "train", train, live, dist, ["pooled", "tokens"], False, 60.0)
        cached = CachedSource({"train": store}, train, cfg.cache, cfg.train, 1000, dist, probe_bank.needs)
        iters = live.iters_per_epoch
        trainer = _trainer(head_specs(["linear", "attention_pooling"], LRS), enc, iters, args.batch, autocast)
        timed_epoch(trainer, cached, 0)  # warm-up
        t_cached = min(timed_epoch(trainer, cached, e) for e in (1, 2, 3))
        t_live = min(timed_epoch(trainer, live, e) for e in range(1, 1 + live_epochs))
        speedup = t_live / t_cached
    total = time.perf_counter() - t0
    threads = torch.get_num_threads()
    print(f"backbone: 300M-shaped InternViT, {depth} blocks, {args.image_size}px, batch {args.batch}, "
          f"{device}, {threads} threads")
    print(f"(a) step with 16 heads {t_many * 1e3:.0f} ms vs 1 head {t_one * 1e3:.0f} ms (fastest of {reps})")
    print(f"(b) epoch of {iters} steps x {args.batch} images, 16 heads: live {t_live:.2f} s, "
          f"cached {t_cached:.3f} s")
    print(f"total {total:.0f} s")
    if args.record:
        _record(args.record, depth, args, device, threads, ratio, speedup, t_many, t_one, t_live,
                t_cached, iters)
    print(f"sweep_cost_ratio={ratio:.2f} cache_speedup={speedup:.1f}")


def _image_batches(live: LiveSource, n: int):
    """``n`` augmented (images, soft targets) device batches, decoded once and reused for every timing."""
    live.sampler.set_epoch(0)
    loader = live._loader(live.train_set, live.batch, live.sampler, drop_last=True)
    out = []
    while len(out) < n:
        for batch in live._device_batches(loader, None, 1):
            soft = mixup_target(batch["targets"], 1000, 1.0, 0.1)
            out.append((batch["images"], soft))
            if len(out) == n:
                break
    return out


def _record(path: Path, depth, args, device, threads, ratio, speedup, t_many, t_one, t_live, t_cached,
            iters) -> None:
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = path.read_text() if path.is_file() else ""
    if "## probe_sweep" not in text:
        text += ("\n## probe_sweep\n\n`benchmarks/probe_sweep.py`: (a) training step (backbone pass + "
                 "heads) of 16 heads vs 1 linear head; (b) one 16-head epoch recomputing the backbone "
                 "vs read from the feature cache. Goals: ratio ≤ 1.15, speedup ≥ 20.\n\n"
                 "| date | device | backbone | batch | 16 heads / 1 head (ms) | sweep_cost_ratio | "
                 "live / cached epoch (s) | cache_speedup |\n|---|---|---|---|---|---|---|---|\n")
    row = (f"| {when} | {device}, {threads} threads | 300M-shaped, {depth} blocks, {args.image_size}px | "
           f"{args.batch} | {t_many * 1e3:.0f} / {t_one * 1e3:.0f} | {ratio:.2f} | "
           f"{t_live:.2f} / {t_cached:.3f} ({iters} steps) | {speedup:.1f} |\n")
    head, sep, tail = text.partition("## probe_sweep")
    # Keep our rows together under our heading even if other sections follow it.
    nxt = tail.find("\n## ", 1)
    section, rest = (tail, "") if nxt < 0 else (tail[:nxt + 1], tail[nxt + 1:])
    lines = section.splitlines(keepends=True)
    last_row = max(i for i, line in enumerate(lines) if line.startswith("|"))
    lines.insert(last_row + 1, row)  # new rows join the table, above any notes below it
    path.write_text(head + sep + "".join(lines) + rest)


if __name__ == "__main__":
    main()
