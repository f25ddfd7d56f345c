"""How far a run travels through the package: files, functions and returns from the command to the row.

Runs `probes classify` and `probes segment` once each, in-process, on a tiny encoder and tiny data in the
real layouts (the builders of probes.testing), with a profiler recording every Python call into a module
of `probes/` (probes/testing, which only builds the inputs, is left out). What it counts, per command:
- `files`: the package files a call entered;
- `functions`: the distinct functions called (a function called many times counts once);
- `returns`: how often a reader who reads each function once, in the order the run first calls it, comes
  back into a file already left (A → B → A counts one): the detours of following the run through the code.
This is a measurement of the code as it runs (every branch the run takes, none it does not), not a
timing. docs/architecture.md records its figures.

    python benchmarks/call_path.py             # both commands, ~1 min on 2 CPU cores
    python benchmarks/call_path.py --smoke     # classify only

Last line: `classify_files=N classify_functions=N classify_returns=N [segment_files=N ...]`.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PACKAGE = ROOT / "probes"
SKIP = PACKAGE / "testing"


class CallTrail:
    """The package functions a run calls, each at its first call, with their files (a sys.setprofile hook)."""

    def __init__(self) -> None:
        self.files: List[str] = []     # the file of each newly called function, repeats collapsed
        self.functions: set = set()

    def __call__(self, frame, event: str, arg) -> None:
        if event != "call":
            return
        path = frame.f_code.co_filename
        if not path.startswith(str(PACKAGE)) or path.startswith(str(SKIP)):
            return
        name = os.path.relpath(path, ROOT)
        function = (name, frame.f_code.co_firstlineno)
        if function in self.functions:
            return
        self.functions.add(function)
        if not self.files or self.files[-1] != name:
            self.files.append(name)

    def summary(self) -> Dict[str, int]:
        """Files entered, distinct functions, and returns into a file already left."""
        seen: set = set()
        returns = 0
        for name in self.files:
            returns += name in seen
            seen.add(name)
        return {"files": len(seen), "functions": len(self.functions), "returns": returns}


def traced(command: Callable[[], int], show: bool = False) -> Dict[str, int]:
    """Run `command` under the call trail (printing its files when `show`); fail loudly if the command fails."""
    trail = CallTrail()
    sys.setprofile(trail)
    try:
        code = command()
    finally:
        sys.setprofile(None)
    if code != 0:
        raise SystemExit(f"call_path: the traced command exited {code}")
    if show:
        print("\n".join(dict.fromkeys(trail.files)))
    return trail.summary()


def main() -> None:
    """Trace one tiny classify (and segment) run from the command line parser to the row."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="classify only")
    parser.add_argument("--list", action="store_true", help="also print each command's files, in first-call order")
    args = parser.parse_args()
    logging.disable(logging.INFO)

    import torch

    from probes.cli import main as probes
    from probes.testing.checkpoints import write_tiny_hf_encoder
    from probes.testing.imagenet_data import shared_a_r_classes, write_imagenet_root

    torch.set_num_threads(1)
    figures: Dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        encoder = write_tiny_hf_encoder(work / "enc", style="300m", seed=0)
        data = work / "imagenet"
        write_imagenet_root(data, shared_a_r_classes(4), train_per_class=3)
        classify = ["classify", "--config", "tiny_demo", "--encoder", str(encoder), "--data", str(data),
                    "--out", str(work / "cls"), "--epochs", "2", "--device", "cpu", "--workers", "0"]
        figures.update({f"classify_{k}": v for k, v in traced(lambda: probes(classify), args.list).items()})
        if not args.smoke:
            from probes.testing.segmentation_data import band_scene, write_ade20k

            ade = write_ade20k(work / "seg", band_scene([0, 1, 2, 3]), 4, 2, sizes=((70, 84),), seed=0)
            segment = ["segment", "--encoder", str(encoder), "--dataset", "ade20k", "--data", str(ade),
                       "--mode", "linear", "--iters", "2", "--allow-subset", "--batch-size", "2", "--crop-size", "56",
                       "--device", "cpu", "--out", str(work / "seg-out"), "--cfg-options",
                       "train_dataloader.num_workers=0", "train_dataloader.persistent_workers=False",
                       "val_dataloader.num_workers=0", "val_dataloader.persistent_workers=False"]
            figures.update({f"segment_{k}": v for k, v in traced(lambda: probes(segment), args.list).items()})
    for name, value in figures.items():
        print(f"{name:22s} {value}")
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
