"""Cost of the one-pass sweep and of the feature cache, measured in one run on the same data.

(a) ``sweep_cost_ratio``: a training step of 16 heads (linear + attention pooling × 8 lrs) on one
    backbone pass, divided by the same step with one linear head. Goal ≤ 1.15.
    ``masked_step_ratio``: the same 16-head step with a per-sample held-out mask on the grid heads (what a
    live run steps: ``SweepTrainer.step(..., grid_keep)``, one sample of each batch held out), divided by
    the unmasked 16-head step; timed in the same rounds, same statistic.
(b) ``cache_speedup``: one 16-head training epoch whose features are recomputed by the backbone from
    the images, divided by the same epoch read from the feature cache. Both sides do the same work:
    the live side computes exactly the features the cache stores (evaluation transform, no Mixup;
    a cached run has no augmentation), then trains the same heads on them. Goal ≥ 20.
    Beside it: the cache's build time (the live pass that writes it), the break-even epoch count
    (the fewest epochs after which build + cached epochs cost less than live ones), and for
    reference the augmented live epoch a live run trains on (RandomResizedCrop, flip, Mixup/CutMix).
    Also timed: the cached epoch's feature reading alone (the same reads, no heads), to say how much of
    the cached epoch is the cache and how much the heads' own steps.

Every timing here is the median of the same number of rounds (``--rounds``) after one untimed
warm-up of each side, the sides alternating round by round (order rotated) so machine drift hits
them alike; on CUDA each timed region ends with a synchronise.

The backbone is a random-weight, 300M-shaped InternViT (C 1024, 16 heads, MLP 4096) at 224px with
``--depth`` blocks, written as a Hugging Face folder and loaded with ``probes.load_encoder``.

Both ratios are (backbone + heads) over (heads), per step: they grow with the backbone's work per image
(blocks, tokens) and with the batch, over which the heads' fixed per-step work (SGD, EMA and clipping over
their 58M parameters) spreads. ``--quick`` is a CPU-sized proxy small on both counts (10 of 24 blocks,
batch 8 where the recipe has 1024); ``--recipe`` is closer on both (all 24 blocks, batch 16) and leaves out
the augmented reference epoch to fit its time. Neither runs 448px (4x the tokens).

    python benchmarks/probe_sweep.py --quick      # CPU, ~4 min: 10 blocks, batch 8, 3 rounds
    python benchmarks/probe_sweep.py --recipe     # CPU, ~6 min quiet: 24 blocks, batch 16, 2 rounds
    python benchmarks/probe_sweep.py --smoke      # seconds: proves the script runs (figures meaningless)

The last printed line is exactly
``sweep_cost_ratio=X.XX cache_speedup=Y.Y cache_build_s=Z.ZZ break_even_epochs=N masked_step_ratio=M.MM``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import itertools
import logging
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional

import torch
from timm.data.mixup import mixup_target
from timm.loss import SoftTargetCrossEntropy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes import load_encoder  # noqa: E402
from probes.classification.cache import CachedSource, build_store  # noqa: E402
from probes.classification.config import load_config  # noqa: E402
from probes.classification.datasets import read_train  # noqa: E402
from probes.classification.distributed import DistInfo  # noqa: E402
from probes.classification.live import LiveSource, backbone_features  # noqa: E402
from probes.classification.pipeline import Preprocessing  # noqa: E402
from probes.classification.sweep import HeadBank, SweepTrainer, head_specs  # noqa: E402
from probes.encoders import VERSIONS  # noqa: E402
from probes.runtime import autocast_for  # noqa: E402
from probes.testing.checkpoints import random_internvit, save_hf_folder  # noqa: E402
from probes.testing.imagenet_data import shared_a_r_classes, write_imagenet_root  # noqa: E402

LRS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
LOSS = SoftTargetCrossEntropy()


def _trainer(specs, enc, iters: int, batch: int, autocast=None) -> SweepTrainer:
    torch.manual_seed(0)
    bank = HeadBank(specs, enc.embed_dim, enc.num_heads, enc.num_prefix_tokens)
    return SweepTrainer(bank, total_batch=batch, iters_per_epoch=iters, epochs=1000, autocast=autocast)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(work: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of ``work()``, every queued device kernel included."""
    _sync(device)
    start = time.perf_counter()
    work()
    _sync(device)
    return time.perf_counter() - start


def interleaved(sides: Dict[str, Callable[[], object]], rounds: int, device: torch.device) -> Dict[str, List[float]]:
    """Per side, ``rounds`` timings after one untimed warm-up; sides alternate, order rotated each round."""
    names = list(sides)
    for name in names:
        sides[name]()
    times: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(timed(sides[name], device))
    return times


def measure_step_ratio(enc, batches, lrs: List[float], rounds: int, autocast, device) -> Dict[str, float]:
    """Median (backbone + step) time of the sweep's heads unmasked and with the grid heads' held-out mask, and of
    1 head, on the same batches (seconds: `many`, `masked`, `one`)."""
    specs = head_specs(["linear", "attention_pooling"], lrs)
    batch = len(batches[0][0])
    trainers = {"many": _trainer(specs, enc, 100, batch, autocast),
                "masked": _trainer(specs, enc, 100, batch, autocast),
                "one": _trainer(head_specs(["linear"], [0.1]), enc, 100, batch, autocast)}
    cycle = {name: itertools.cycle(batches) for name in trainers}
    # A live run's mask: the grid heads leave the held-out images out of their loss (here one per batch).
    keep = torch.ones(batch, dtype=torch.bool, device=device)
    keep[0] = False

    def step(name: str) -> Callable[[], object]:
        trainer = trainers[name]

        def run():
            images, soft = next(cycle[name])
            trainer.step(backbone_features(enc, images, trainer.bank.needs, autocast), soft, LOSS,
                         keep if name == "masked" else None)
        return run

    times = interleaved({name: step(name) for name in trainers}, rounds, device)
    return {name: statistics.median(t) for name, t in times.items()}


def run_epoch(trainer: SweepTrainer, batches: Iterable) -> None:
    """Train ``trainer`` on every (features, soft targets, grid mask) of an epoch."""
    for feats, soft, keep in batches:
        trainer.step(feats, soft, LOSS, keep)


def same_work_live(live: LiveSource, train, iters: int, smoothing: float):
    """The cached epoch's work done live: evaluation-transform features of the training images."""
    targets = torch.as_tensor(train.targets)
    for feats, indices in itertools.islice(live.eval_batches(train), iters):
        soft = mixup_target(targets[indices].to(live.dist.device), live.num_classes, 1.0, smoothing)
        yield feats, soft, None


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CPU-sized run (~4 minutes)")
    parser.add_argument("--recipe", action="store_true",
                        help="all 24 blocks, batch 16, 2 rounds, no augmented reference epoch (~6 minutes quiet)")
    parser.add_argument("--smoke", action="store_true",
                        help="toy run (1 block, 56px, 1 round): proves the script works, figures meaningless")
    parser.add_argument("--depth", type=int, help="backbone blocks (default 10 quick, 24 full)")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds of every side")
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int,
                        help="torch CPU threads (default: 1 with --quick/--smoke on CPU, else torch's choice)")
    parser.add_argument("--record", type=Path, help="append the measurement to this markdown file")
    args = parser.parse_args()
    if args.quick + args.smoke + args.recipe > 1:
        parser.error("choose one of --quick, --recipe, --smoke")
    small = args.quick or args.smoke or args.recipe
    args.mode = "--smoke" if args.smoke else "--quick" if args.quick else "--recipe" if args.recipe else None
    args.depth = args.depth or (1 if args.smoke else 10 if args.quick else 24)
    args.batch = args.batch or (4 if args.smoke else 16 if args.recipe else 8)
    args.image_size = args.image_size or (56 if args.smoke else 224)
    args.rounds = args.rounds or (1 if args.smoke else 3 if args.quick else 2 if args.recipe else 5)
    # Two steps per epoch in the small modes (4 classes).
    args.train_per_class = 2 if args.smoke else 4 if args.quick else 8 if args.recipe else 16
    args.augmented = not args.recipe   # a reference only; --recipe leaves it out to fit its time
    args.lrs = LRS[3:5] if args.smoke else LRS  # smoke: 4 heads, the same code
    # On a shared 2-core machine an OpenMP barrier waiting for a descheduled thread made small
    # ops up to 100x slower here (the neighbour gets measured, not the code): small runs use one thread.
    args.threads = args.threads or (1 if small and args.device in (None, "cpu") else None)
    return args


def main() -> None:
    """Run both measurements and print the summary line last."""
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        arch = VERSIONS["InternViT-300M-448px"].replace(num_hidden_layers=args.depth, image_size=args.image_size)
        save_hf_folder(random_internvit(arch, seed=0).state_dict(), arch, tmp / "encoder")
        classes = shared_a_r_classes(4)
        write_imagenet_root(tmp / "data", classes, train_per_class=args.train_per_class,
                            size=(args.image_size + 32, args.image_size), sets=("train",), quirks=False)
        cfg = load_config(None, {
            "image_size": args.image_size, "data.allow_subset": True, "data.workers": 0,
            "train.batch_size": args.batch, "train.eval_batch_size": args.batch,
            "cache.batch_size": args.batch, "cache.store": ["pooled", "tokens"], "runtime.progress": False})
        enc = load_encoder(str(tmp / "encoder"), dtype="float32" if args.device in (None, "cpu") else None,
                           device=args.device or "cpu")
        device = next(enc.parameters()).device
        autocast = lambda: autocast_for(device, "bf16")  # noqa: E731

        dist = DistInfo(0, 1, device)
        train = read_train(tmp / "data" / "train", allow_subset=True)
        specs = head_specs(["linear", "attention_pooling"], args.lrs)
        probe_bank = HeadBank(specs, enc.embed_dim,
                              enc.num_heads, enc.num_prefix_tokens)
        pre = Preprocessing.resolve(cfg.image, enc.data_config)
        live = LiveSource(enc, train, pre, cfg.train, cfg.data, 1000, dist, probe_bank.needs, autocast)

        # (a) the same augmented batches for both bank sizes
        steps = measure_step_ratio(enc, _image_batches(live, 3), args.lrs, args.rounds, autocast, device)
        t_many, t_masked, t_one = steps["many"], steps["masked"], steps["one"]
        ratio, masked_ratio = t_many / t_one, t_masked / t_many

        # (b) the cache's build (timed once: building is what the break-even pays back), then epochs
        build_s = timed(lambda: build_store(tmp / "cache" / "train", train, live, dist, ["pooled", "tokens"],
                                            False, 60.0), device)
        store = build_store(tmp / "cache" / "train", train, live, dist, ["pooled", "tokens"], False, 60.0)
        cached = CachedSource({"train": store}, train, cfg.cache, cfg.train, 1000, dist, probe_bank.needs)
        iters = cached.iters_per_epoch
        names = ("live", "cached", "augmented") if args.augmented else ("live", "cached")
        trainers = {side: _trainer(specs, enc, iters, args.batch, autocast) for side in names}
        epochs = {side: itertools.count() for side in (*names, "read")}
        sides = {
            "live": lambda: run_epoch(trainers["live"], same_work_live(live, train, iters, cfg.train.smoothing)),
            "cached": lambda: run_epoch(trainers["cached"], cached.train_batches(next(epochs["cached"]))),
            "augmented": lambda: run_epoch(trainers["augmented"], live.train_batches(next(epochs["augmented"]))),
            # The cached epoch's reads alone: memmap rows, bf16 -> float32, targets.
            "read": lambda: list(cached.train_batches(next(epochs["read"]))),
        }
        times = interleaved({name: sides[name] for name in (*names, "read")}, args.rounds, device)
        t_live, t_cached, t_read = (statistics.median(times[s]) for s in ("live", "cached", "read"))
        t_aug = statistics.median(times["augmented"]) if args.augmented else None
        speedup = t_live / t_cached
        saved = t_live - t_cached
        break_even = math.floor(build_s / saved) + 1 if saved > 0 else None
    total = time.perf_counter() - t0
    threads = torch.get_num_threads()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"backbone: 300M-shaped InternViT, {args.depth} blocks, {args.image_size}px, batch {args.batch}, "
          f"{device} ({name}), {threads} threads; every figure the median of {args.rounds} rounds after a warm-up"
          + (f" ({args.mode})" if args.mode else ""))
    heads = len(specs)
    print(f"(a) step with {heads} heads {t_many * 1e3:.0f} ms vs 1 head {t_one * 1e3:.0f} ms; with the grid heads' "
          f"held-out mask {t_masked * 1e3:.0f} ms")
    augmented = f"{t_aug:.3f} s" if t_aug is not None else "not run (--recipe leaves it out)"
    print(f"(b) epoch of {iters} steps x {args.batch} images, {heads} heads: live {t_live:.3f} s (the cached "
          f"features recomputed), cached {t_cached:.3f} s, of which reading the features {t_read:.3f} s "
          f"(timed alone); augmented live epoch {augmented}")
    print(f"    cache build {build_s:.3f} s (one pass of {len(train)} images); break-even after "
          f"{break_even if break_even else 'never'} epochs (build + n cached < n live)")
    print(f"total {total:.0f} s")
    if args.record:
        _record(args.record, args, f"{device} ({name})", threads, ratio, speedup, t_many, t_one, t_live,
                t_cached, t_aug, build_s, break_even, iters, t_masked, masked_ratio, t_read)
    print(f"sweep_cost_ratio={ratio:.2f} cache_speedup={speedup:.1f} cache_build_s={build_s:.2f} "
          f"break_even_epochs={break_even if break_even else 'never'} masked_step_ratio={masked_ratio:.2f}")


def _image_batches(live: LiveSource, n: int) -> list:
    """``n`` augmented (images, soft targets) device batches, decoded once and reused for every timing."""
    images = live.images
    images.sampler.set_epoch(0)
    loader = images.loader(images.train_set, images.batch, images.sampler, drop_last=True,
                           collate_fn=images.paths.train.collate)
    out: List[tuple] = []
    while len(out) < n:
        for batch in images.device_batches("train", loader, None, 1, decode=images.paths.train.hook):
            out.append((batch["images"], mixup_target(batch["targets"], 1000, 1.0, 0.1)))
            if len(out) == n:
                break
    return out


HEADER = ("| date | device | backbone | batch | rounds | 16 heads / 1 head (ms) | sweep_cost_ratio | "
          "live / cached epoch (s) | cache_speedup | cache build (s) | break-even epochs | augmented live epoch (s) | "
          "16 heads masked (ms) | masked_step_ratio |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")


def _record(path: Path, args, device: str, threads: int, ratio: float, speedup: float, t_many: float,
            t_one: float, t_live: float, t_cached: float, t_aug: Optional[float], build_s: float,
            break_even: Optional[int], iters: int, t_masked: float, masked_ratio: float, t_read: float) -> None:
    """Add one row to the probe_sweep table of ``path`` (a RESULTS.md)."""
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = path.read_text() if path.is_file() else ""
    if "## probe_sweep" not in text:
        text += "\n## probe_sweep\n\n" + HEADER
    mode = f" (`{args.mode}`)" if args.mode else ""
    row = (f"| {when} | {device}, {threads} threads | 300M-shaped, {args.depth} blocks, {args.image_size}px{mode} | "
           f"{args.batch} | {args.rounds} (median) | {t_many * 1e3:.0f} / {t_one * 1e3:.0f} | {ratio:.2f} | "
           f"{t_live:.2f} / {t_cached:.3f} ({iters} steps; reading {t_read:.3f}) | {speedup:.1f} | {build_s:.2f} | "
           f"{break_even if break_even else 'never'} | {f'{t_aug:.2f}' if t_aug is not None else '— (not run)'} | "
           f"{t_masked * 1e3:.0f} | {masked_ratio:.2f} |\n")
    head, sep, tail = text.partition("## probe_sweep")
    # Keep our rows together under our heading even if other sections follow it.
    nxt = tail.find("\n## ", 1)
    section, rest = (tail, "") if nxt < 0 else (tail[:nxt + 1], tail[nxt + 1:])
    lines = section.splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    last_row = first
    while last_row + 1 < len(lines) and lines[last_row + 1].startswith("|"):
        last_row += 1
    lines.insert(last_row + 1, row)  # new rows join the first table, above any notes or older tables below it
    path.write_text(head + sep + "".join(lines) + rest)


if __name__ == "__main__":
    main()
