"""Where one training step of a sweep's 16 heads goes: the cached epoch is nothing but these steps.

The heads are the default sweep's (linear + attention pooling × 8 lrs) at the 300M width (C 1024, 16
attention heads, 1000 classes: 58.3M head parameters), trained by ``SweepTrainer`` on random features of
the shape a 224px (``--tokens 257``) or 448px (``--tokens 1025``) backbone gives. Printed:

(a) the step's time at each ``--batches`` size (median of ``--rounds`` after a warm-up, sizes alternating):
    what is fixed per step and what grows with the batch;
(b) the step's phases at the first size, from one profiled round of the step's own ``record_function``
    labels (forward, loss, backward, clip, SGD, EMA; the profiler's overhead included, so shares, not ms,
    are the figure to read);
(c) the 16 heads' SGD step as the trainer takes it (``fused=True``) vs ``foreach=True`` on the same
    gradients (median of the same rounds, alternating).

    python benchmarks/heads_step.py --quick    # ~30 s on one CPU thread: batches 8 and 64, 224px tokens
    python benchmarks/heads_step.py --smoke    # seconds, toy width: proves the script runs

The last printed line is exactly ``step_ms=X update_share=Y foreach_over_fused=Z`` (the first batch
size's step, the share of clip + SGD + EMA in it, and the foreach SGD's time over the fused one's).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch
from timm.data.mixup import mixup_target
from timm.loss import SoftTargetCrossEntropy
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes.classification.sweep import FeatureNeeds, HeadBank, SweepTrainer, head_specs, make_features  # noqa: E402

LRS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
PHASES = ("forward", "loss", "backward", "clip", "sgd", "ema")
UPDATE = ("clip", "sgd", "ema")


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300M width, batches 8 and 64 (~30 s)")
    parser.add_argument("--smoke", action="store_true", help="toy width, 1 round: proves the script runs")
    parser.add_argument("--batches", help="comma-separated batch sizes (default 8,64; smoke 4)")
    parser.add_argument("--tokens", type=int, help="tokens per image (default 257 = 224px; 1025 = 448px)")
    parser.add_argument("--rounds", type=int, help="timed rounds (default 5; smoke 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as probe_sweep)")
    args = parser.parse_args()
    args.width, args.attn_heads = (64, 4) if args.smoke else (1024, 16)
    args.batches = [int(b) for b in (args.batches or ("4" if args.smoke else "8,64")).split(",")]
    args.tokens = args.tokens or (17 if args.smoke else 257)
    args.rounds = args.rounds or (1 if args.smoke else 5)
    args.lrs = LRS[3:5] if args.smoke else LRS
    return args


def make_trainer(args: argparse.Namespace, batch: int) -> SweepTrainer:
    """The sweep's heads and their trainer, as a run builds them (fixed seed)."""
    torch.manual_seed(0)
    bank = HeadBank(head_specs(["linear", "attention_pooling"], args.lrs), args.width, args.attn_heads, 1)
    return SweepTrainer(bank, total_batch=batch, iters_per_epoch=100, epochs=1000)


def make_batch(args: argparse.Namespace, batch: int) -> tuple:
    """Random features of one batch (tokens rounded through bf16, as the cache stores them) and soft targets."""
    g = torch.Generator().manual_seed(batch)
    tokens = torch.randn(batch, args.tokens, args.width, generator=g).bfloat16().float()
    targets = torch.randint(0, 1000, (batch,), generator=g)
    return make_features(tokens, 1, FeatureNeeds(True, True)), mixup_target(targets, 1000, 1.0, 0.1)


def alternating(sides: Dict[str, Callable[[], object]], rounds: int) -> Dict[str, float]:
    """Median seconds per side over ``rounds`` after one untimed warm-up; sides alternate, order rotated."""
    names = list(sides)
    for name in names:
        sides[name]()
    times: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            sides[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def phase_seconds(trainer: SweepTrainer, feats, soft, loss) -> Dict[str, float]:
    """CPU seconds of each labelled phase in one profiled step."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer.step(feats, soft, loss)
    totals = {e.key: e.cpu_time_total / 1e6 for e in prof.key_averages()}
    return {phase: totals.get(f"heads.{phase}", 0.0) for phase in PHASES}


def sgd_sides(trainer: SweepTrainer) -> Dict[str, Callable[[], object]]:
    """The heads' SGD steps as trained (fused) and the same with foreach, each on its own copy of the weights."""
    sides = {}
    for kind in ("fused", "foreach"):
        optimizers = []
        for key, opt in trainer.optimizers.items():
            params = [p.detach().clone() for p in trainer.bank.heads[key].parameters()]
            for p, q in zip(params, trainer.bank.heads[key].parameters()):
                p.grad = q.grad.clone()
            group = opt.param_groups[0]
            optimizers.append(torch.optim.SGD(params, lr=group["initial_lr"], momentum=group["momentum"],
                                              nesterov=group["nesterov"], **{kind: True}))
        sides[kind] = lambda opts=optimizers: [o.step() for o in opts]
    return sides


def main() -> None:
    """Time the step, profile its phases, compare the optimizers; print the summary line last."""
    args = parse_args()
    torch.set_num_threads(args.threads)
    loss = SoftTargetCrossEntropy()
    trainers = {b: make_trainer(args, b) for b in args.batches}
    batches = {b: make_batch(args, b) for b in args.batches}
    n_params = sum(p.numel() for p in trainers[args.batches[0]].bank.parameters())
    steps = alternating({str(b): (lambda b=b: trainers[b].step(*batches[b], loss)) for b in args.batches},
                        args.rounds)
    first = args.batches[0]
    phases = phase_seconds(trainers[first], *batches[first], loss)
    sgd = alternating(sgd_sides(trainers[first]), args.rounds)
    print(f"{len(trainers[first].optimizers)} heads, C {args.width}, {args.tokens} tokens/image, {n_params / 1e6:.1f}M "
          f"head parameters, {torch.get_num_threads()} thread(s); medians of {args.rounds} rounds after a warm-up")
    for b in args.batches:
        print(f"(a) batch {b}: step {steps[str(b)] * 1e3:.0f} ms ({steps[str(b)] / b * 1e3:.1f} ms per image)")
    profiled = sum(phases.values())
    if profiled:
        print(f"(b) batch {first}, one profiled step, share of its labelled phases: "
              + ", ".join(f"{p} {phases[p] / profiled:.0%}" for p in PHASES))
    else:   # a SweepTrainer older than its record_function labels (timing an earlier commit)
        print("(b) no labelled phases in this SweepTrainer.step")
    update_share = sum(phases[p] for p in UPDATE) / profiled if profiled else float("nan")
    ratio = sgd["foreach"] / sgd["fused"]
    print(f"(c) the heads' SGD steps: fused {sgd['fused'] * 1e3:.0f} ms, foreach {sgd['foreach'] * 1e3:.0f} ms")
    print(f"step_ms={steps[str(first)] * 1e3:.0f} update_share={update_share:.2f} foreach_over_fused={ratio:.2f}")


if __name__ == "__main__":
    main()
