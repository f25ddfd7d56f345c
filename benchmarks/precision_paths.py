"""Tiny full tuning in each precision arrangement: first-step loss and the last step's parameters (CPU).

The same run three times through `probes segment` (run_segmentation), only `precision` changing: `fp32`,
`autocast-fp32-weights` (fp32 weights under bf16 autocast, CPU autocast here) and `released` (bf16 backbone
and neck weights, fp32 masters updated as the released DeepSpeed 0.8.0 ZeRO-1 run did, fp32-computing
heads; master_weights.py). Tiny InternViT-6B-style encoder (4 blocks, width 48), tiny ADE20K-layout data
(4 training images), crop 56, batch 2, heads at 16/8 channels, the recipe's schedule shape (--iters N),
seed 0 for every run.

    python benchmarks/precision_paths.py            # 100 iterations per path (CPU, ~10 min on 2 busy cores)
    python benchmarks/precision_paths.py --smoke    # 2 iterations: proves the script works (figures meaningless)

Per path: `first_loss` (iteration 1), `param_norm` (L2 of every trained parameter at the last iteration),
`max_abs_diff` (largest |parameter - fp32 run's|), `update_diff` (L2 of the difference from the fp32 run
over the L2 of the fp32 run's own change since iteration 0). `bf16 rounding` is the update_diff that
storing the fp32 run's final parameters in bf16 would alone give. A markdown table, then the last line:
`released_first_loss_diff=… autocast_first_loss_diff=… released_update_diff=… autocast_update_diff=…
bf16_rounding_diff=… released_master_diff=…` (the last: how far the released run's fp32 masters moved from its
own bf16-rounded start, against the fp32 run's change, over the same norm: the update without the storage).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PATHS = ("fp32", "autocast-fp32-weights", "released")
TINY = {"model.decode_head.channels": 16, "model.auxiliary_head.channels": 8, "default_hooks.logger.interval": 1,
        "train_dataloader.num_workers": 0, "train_dataloader.persistent_workers": False,
        "val_dataloader.num_workers": 0, "val_dataloader.persistent_workers": False}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="2 iterations per path")
    parser.add_argument("--iters", type=int, default=None, help="iterations per path (default 100)")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.iters is None:
        args.iters = 2 if args.smoke else 100
    return args


def _register_record_hook():
    """A hook that saves the trained parameters as training starts (after init and the precision cast) and
    the first iteration's loss (mmengine's visualizer, one per process, would log later runs into the first's)."""
    import torch
    from mmengine.hooks import Hook
    from mmengine.model import is_model_wrapper
    from mmseg.registry import HOOKS

    if HOOKS.get("RecordStartHook") is not None:
        return

    @HOOKS.register_module()
    class RecordStartHook(Hook):
        """Writes the model's state dict before the first iteration, and that iteration's loss, under `path`."""

        shapes_numbers = False   # it only saves

        def __init__(self, path: str) -> None:
            self.path = Path(path)

        def before_train(self, runner) -> None:
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            torch.save(model.state_dict(), self.path.with_suffix(".pth"))

        def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
            if runner.iter == 0:   # still 0 in after_train_iter of the first iteration
                self.path.with_suffix(".json").write_text(json.dumps({"loss": float(outputs["loss"].detach())}))


def _trained(state: dict) -> dict:
    """The trained tensors of a state dict (BN statistics and counters left out), as float64."""
    return {k: v.double() for k, v in state.items() if v.is_floating_point() and "running_" not in k}


def _norm(tensors) -> float:
    return float(sum(float(t.pow(2).sum()) for t in tensors) ** 0.5)


def run_path(precision: str, encoder: Path, data: Path, out: Path, iters: int) -> dict:
    """One tiny full-tuning run; its first loss and its initial and final trained parameters."""
    import torch

    from probes.segmentation.runner import SegmentOptions, run_segmentation

    start = out / f"{precision}-start"
    options = {**TINY, "precision": precision, "custom_hooks": [dict(type="RecordStartHook", path=str(start))]}
    row = run_segmentation(SegmentOptions(
        encoder=str(encoder), dataset="ade20k", data=data, mode="full", iters=iters, batch_size=2, crop_size=56,
        device="cpu", out=out / precision, cfg_options=options, allow_subset=True, overwrite=True))
    first = json.loads(start.with_suffix(".json").read_text())
    final = torch.load(next((out / precision).glob(f"*/iter_{iters}.pth")), map_location="cpu", weights_only=False)
    initial = torch.load(start.with_suffix(".pth"), map_location="cpu")
    # The released path's fp32 masters, by parameter name (the layer-decay groups carry the names).
    groups = final["optimizer"]["param_groups"]
    masters = {name: m.double() for group, saved in zip(groups, final["optimizer"].get("fp32_masters", []))
               for name, m in zip(group["param_names"], saved)}
    return {"first_loss": float(first["loss"]), "precision": row["precision"], "initial": _trained(initial),
            "final": _trained(final["state_dict"]), "masters": masters}


def _master_diff(run: dict, base: dict) -> float:
    """L2 of (the masters' change from the run's own start) - (the fp32 run's change): the update, not the storage."""
    return _norm((m - run["initial"][k]) - (base["final"][k] - base["initial"][k]) for k, m in run["masters"].items())


def summarise(runs: dict) -> tuple[list[str], str]:
    """Markdown rows per path and the key=value summary line."""
    import torch

    base = runs["fp32"]
    keys = sorted(base["final"])
    update = _norm(base["final"][k] - base["initial"][k] for k in keys)
    rows = ["| path | first-step loss | parameter L2 | max abs diff vs fp32 | update diff vs fp32 | "
            "fp32 masters' update diff |", "|---|---|---|---|---|---|"]
    diffs = {}
    for name, run in runs.items():
        delta = [run["final"][k] - base["final"][k] for k in keys]
        diffs[name] = _norm(delta) / update
        masters = f"{_master_diff(run, base) / update:.4f}" if run["masters"] else ""
        rows.append(f"| {name} | {run['first_loss']:.7f} | {_norm(run['final'][k] for k in keys):.6f} | "
                    f"{max(float(d.abs().max()) for d in delta):.3e} | {diffs[name]:.4f} | {masters} |")
    rounding = _norm(base["final"][k].to(torch.bfloat16).double() - base["final"][k] for k in keys) / update
    rows.append(f"| fp32 stored in bf16 (reference) | | | | {rounding:.4f} | |")
    master_diff = _master_diff(runs["released"], base) / update
    line = (f"released_first_loss_diff={runs['released']['first_loss'] - base['first_loss']:.3e} "
            f"autocast_first_loss_diff={runs['autocast-fp32-weights']['first_loss'] - base['first_loss']:.3e} "
            f"released_update_diff={diffs['released']:.4f} autocast_update_diff={diffs['autocast-fp32-weights']:.4f} "
            f"bf16_rounding_diff={rounding:.4f} released_master_diff={master_diff:.4f}")
    return rows, line


def main(argv: list[str] | None = None) -> None:
    """Run the three paths and print the table and the summary line."""
    args = parse_args(argv)
    from probes.segmentation.mm_compat import import_mmseg
    from probes.testing.checkpoints import write_tiny_hf_encoder
    from probes.testing.segmentation_data import band_scene, write_ade20k

    import_mmseg()
    _register_record_hook()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        encoder = write_tiny_hf_encoder(out / "encoder", style="6b", seed=0)
        data = write_ade20k(out / "data", band_scene([0, 1, 2, 3]), sizes=((70, 84), (84, 84)), seed=0)
        runs = {name: run_path(name, encoder, data, out, args.iters) for name in PATHS}
        rows, line = summarise(runs)
    print(f"tiny full tuning, {args.iters} iterations per path (CPU)")
    print("\n".join(rows))
    print(line)


if __name__ == "__main__":
    main()
