"""Data pipeline per core, all work timed: the path data.crop_on='auto' picks here vs the float pipeline.

All paths decode the same generated 500x375 JPEGs with Pillow, draw the same seeded crops and give
the same pixels:
- "float", the pipeline before DeviceBatches: Pillow resize, ToTensor + Normalize in the worker, a
  plain torch.stack; the main process moves the batch to the device;
- "worker" (data.crop_on='worker'): Pillow resizes in the worker and the crop's channels are written
  straight into a uint8 batch in shared memory the main process lends (a slot of a BatchRing, reused
  once the batch was copied out); the main process copies the batch to the device, which
  converts and normalises it (DeviceBatches; on a CPU one table look-up per pixel into reused memory);
- "device" (data.crop_on='device'): the worker decodes, crops and computes Pillow's integer
  weights; the device resamples (float64 products, exact) and normalises (DeviceCrops + DeviceBatches).
Each path is a real DataLoader with ONE worker process (one torch thread) feeding the real
consumer of a run on ``--device``. A path's cost per image is the worker's CPU seconds (read from
/proc, so other jobs on a shared machine inflate it less than wall time) plus the main process's
CPU seconds in the consumer loop (receiving, pinning, copying, launching or, on a CPU device,
running the resample and normalisation); on CUDA each pass ends with a synchronise and the pass's
wall time is printed beside. The paths alternate round by round (order rotated) so machine drift
hits them alike; a ratio is the median of per-round ratios.

The headline is the path 'auto' takes on this machine: off CUDA the worker path (untimed, as a run
decides); on CUDA the faster of the two as a run times them (probes.classification.pipeline.image_paths).
A second table builds the worker path's training loader up step by step (decode; + crop; + the batch in
fresh shared memory; + a lent slot, the real path; the real path in a spawned worker, with and without
Pillow keeping its blocks), each a one-worker loader: CPU ms and the worker's page faults per image (/proc).

    python benchmarks/data_pipeline.py --quick        # ~3 min on 2 CPU cores
    python benchmarks/data_pipeline.py --images 256 --rounds 9
    python benchmarks/data_pipeline.py --smoke        # seconds: proves the script runs (figures meaningless)

Last line: `pipeline_img_s_per_core=X ratio_vs_float_pipeline=Y path=P` (training transform, P the
path 'auto' picks on this machine).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms as T

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes.classification.config import load_config  # noqa: E402
from probes.classification.datasets import ImageSet  # noqa: E402
from probes.classification.pipeline.batch_memory import BufferPool  # noqa: E402
from probes.classification.pipeline.image_paths import crop_place, time_crop_paths  # noqa: E402
from probes.classification.pipeline.device_batches import DeviceBatches  # noqa: E402
from probes.classification.pipeline.device_crops import (  # noqa: E402
    DeviceCrops, EvalCropPlans, TrainCropPlans, collate_plans)
from probes.classification.pipeline.images import (  # noqa: E402
    ImageFiles, build_eval_transform, build_train_transform, collate, decode_rgb)
from probes.classification.pipeline.loaders import PREFETCH, data_loader, ring_for  # noqa: E402
from probes.classification.pipeline.normalisation import PixelTable  # noqa: E402
from probes.runtime import resolve_device  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
PATHS = ("float", "worker", "device")
KINDS = ("train", "eval")


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (~3 min on 2 CPU cores)")
    parser.add_argument("--smoke", action="store_true", help="toy run (8 small images, 1 round): figures meaningless")
    parser.add_argument("--images", type=int, default=None, help="generated JPEGs per pass")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="images per collated batch")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--device", default=None, help="the run's device (default: cuda if present, else cpu)")
    args = parser.parse_args()
    args.images = args.images or (8 if args.smoke else 96 if args.quick else 256)
    args.rounds = args.rounds or (1 if args.smoke else 6 if args.quick else 9)
    args.batch_size = args.batch_size or (4 if args.smoke else 16)
    args.image_size = args.image_size or (64 if args.smoke else 448)
    return args


def write_jpegs(folder: Path, n: int, seed: int = 0) -> List[Path]:
    """500x375 photo-like JPEGs (smooth colour fields plus grain), quality 90."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
        field = np.asarray(coarse.resize((500, 375), Image.BICUBIC), dtype=np.int16)
        grain = rng.integers(-12, 13, field.shape, dtype=np.int16)
        path = folder / f"img_{i:04d}.JPEG"
        Image.fromarray(np.clip(field + grain, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def float_transforms(size: int) -> Dict[str, Callable]:
    """The worker transforms before DeviceBatches: crop, then ToTensor + Normalize in the worker."""
    bicubic = T.InterpolationMode.BICUBIC
    return {"train": T.Compose([T.RandomResizedCrop(size, interpolation=bicubic), T.RandomHorizontalFlip(),
                                T.ToTensor(), T.Normalize(MEAN, STD)]),
            "eval": T.Compose([T.Resize(size, interpolation=bicubic), T.CenterCrop(size),
                               T.ToTensor(), T.Normalize(MEAN, STD)])}


def pillow_decode(path: Path) -> Image.Image:
    """The decoder before DeviceBatches."""
    with Image.open(path) as img:
        return img.convert("RGB")


def float_collate(batch):
    """The collate before DeviceBatches: torch.stack, moved to shared memory when pickled."""
    good = [b for b in batch if b[3] is None]
    return {"images": torch.stack([b[0] for b in good]),
            "targets": torch.tensor([b[1] for b in good], dtype=torch.long),
            "indices": torch.tensor([b[2] for b in good], dtype=torch.long),
            "errors": [b[3] for b in batch if b[3] is not None]}


def one_worker_loader(path: str, dataset: ImageFiles, batch_size: int, collate_fn: Callable,
                      device: torch.device) -> DataLoader:
    """A DataLoader whose single worker process stands for one core.

    The worker and device paths' loader is a run's (`data_loader`: its prefetch, pinning and worker
    set-up), but persistent, unlike a run's (one per epoch), so that its CPU seconds can be read from /proc
    between passes. The float path's is a plain DataLoader with the same prefetch, as before DeviceBatches.
    """
    if path == "float":
        return DataLoader(dataset, batch_size=batch_size, num_workers=1, collate_fn=collate_fn,
                          persistent_workers=True, prefetch_factor=PREFETCH)
    return data_loader(dataset, batch_size, None, False, collate_fn, 1, device, persistent=True)


def _children_stat(fields: Tuple[int, ...]) -> int:
    """The sum over this process's children (the DataLoader workers) of some /proc/<pid>/stat fields."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except FileNotFoundError:
                continue
            values = stat.rsplit(")", 1)[1].split()
            total += sum(int(values[f]) for f in fields)
    return total


def workers_cpu_seconds() -> float:
    """CPU seconds used so far by this process's children (the DataLoader workers), from /proc."""
    return _children_stat((11, 12)) / os.sysconf("SC_CLK_TCK")   # utime, stime


def workers_page_faults() -> int:
    """Minor page faults so far of this process's children (the DataLoader workers), from /proc."""
    return _children_stat((7,))   # minflt


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def consumer(path: str, loader: DataLoader, device: torch.device, hook) -> Callable[[], int]:
    """One pass of the main process's loop of a run on ``device``; returns the images it received.

    As in a run, whose ImagePipeline keeps one BufferPool for all its passes, the passes of a path
    share one pool: on a CPU its float batches reuse memory after the first pass's first batches.
    """
    pool = BufferPool()

    def float_pass() -> int:
        n = 0
        for batch in loader:
            n += len(batch["images"].to(device, non_blocking=True))
        return n

    def device_batches_pass() -> int:
        return sum(len(b["images"]) for b in DeviceBatches(loader, device, MEAN, STD, decode=hook, pool=pool))

    return float_pass if path == "float" else device_batches_pass


def one_pass(run: Callable[[], int], device: torch.device) -> Tuple[float, float, float, int]:
    """(worker CPU s, main-process CPU s, wall s, images) of one epoch, every device kernel finished."""
    torch.manual_seed(0)  # the worker's seed comes from here: the same crops for every path
    _sync(device)
    worker, main, wall = workers_cpu_seconds(), time.process_time(), time.perf_counter()
    n = run()
    _sync(device)
    return (workers_cpu_seconds() - worker, time.process_time() - main, time.perf_counter() - wall, n)


def _as_decoded(img: Image.Image) -> Image.Image:
    return img


def _count(batch: list) -> int:
    """A collate that keeps nothing: what a worker does up to the batch, and no more."""
    return len(batch)


def _received(loader: DataLoader) -> int:
    """Receive a loader's batches in the main process without normalising them (lent slots freed unread)."""
    return sum(b if isinstance(b, int) else len(b["images"]) for b in loader)


FLOOR = ("decode", "decode + RandomResizedCrop", "+ the batch, fresh shared memory",
         "+ the batch, a lent slot (the worker path)", "the worker path, fresh process (spawn)",
         "the same, Pillow keeping no blocks")


def floor_loaders(files: List[Path], size: int, batch: int, device: torch.device) -> Dict[str, DataLoader]:
    """The worker path's training loader built up step by step, each step a one-worker loader of a run's kind.

    The last two start their worker by spawn: a forked worker inherits the main process's allocator, whose
    reuse of freed memory depends on what the main process did before; a spawned one starts as a run's
    first epoch may, so Pillow's block cache (`keep_pillow_blocks`) is compared there.
    """
    crop = build_train_transform(size)
    spawn = multiprocessing.get_context("spawn")

    def run_loader(transform: Callable, collate_fn: Callable, **kw) -> DataLoader:
        return data_loader(ImageFiles(files, [0] * len(files), transform), batch, None, False, collate_fn, 1,
                           device, persistent=True, **kw)

    def lent(context=None) -> Callable:
        return partial(collate, ring=ring_for(batch, size, workers=1, context=context))

    steps = (run_loader(_as_decoded, _count), run_loader(crop, _count), run_loader(crop, collate),
             run_loader(crop, lent()), run_loader(crop, lent(spawn), context=spawn),
             run_loader(crop, lent(spawn), context=spawn, pillow_blocks=False))
    return dict(zip(FLOOR, steps))


def measure_floor(files: List[Path], size: int, batch: int, device: torch.device, rounds: int) -> None:
    """Print each step's worker + main-process CPU ms and the worker's page faults per image (medians of rounds)."""
    loaders = floor_loaders(files, size, batch, device)
    for loader in loaders.values():
        _received(loader)   # warm-up: worker start, a ring's first faults, Pillow's blocks
    seen: Dict[str, list] = {step: [] for step in FLOOR}
    for _ in range(rounds):
        for step, loader in loaders.items():
            torch.manual_seed(0)
            worker, faults, main = workers_cpu_seconds(), workers_page_faults(), time.process_time()
            n = _received(loader)
            seen[step].append(((workers_cpu_seconds() - worker) / n, (time.process_time() - main) / n,
                               (workers_page_faults() - faults) / n))
    print("the worker path step by step (training crops, one worker; CPU ms per image worker + main process "
          "receiving, not normalising; worker page faults per image):")
    for step in FLOOR:
        worker, main, faults = (statistics.median(v[i] for v in seen[step]) for i in range(3))
        print(f"  {step:<44} {worker * 1e3:5.2f} + {main * 1e3:4.2f}   faults {faults:6.1f}")
    batches = [b["images"] for b in loaders[FLOOR[2]]]   # fresh memory: the batches stay valid
    print("the consumer's normalisation alone on those batches (CPU ms per image, into reused memory): " + ", ".join(
        f"{backend} {ms:.2f}" for backend, ms in normalisation_times(batches, rounds).items()))


def normalisation_times(batches: List[torch.Tensor], rounds: int) -> Dict[str, float]:
    """CPU ms per image of the CPU table look-up with OpenCV (where installed) and with numpy (median of rounds)."""
    out = {tuple(b.shape): torch.empty(b.shape, dtype=torch.float32) for b in batches}
    images = sum(len(b) for b in batches)
    times = {}
    for use_opencv in (True, False):
        table = PixelTable(MEAN, STD, use_opencv=use_opencv)
        if table.backend in times:
            continue   # no OpenCV here: one backend
        seen = []
        for _ in range(rounds + 1):
            start = time.process_time()
            for b in batches:
                table(b, out[tuple(b.shape)])
            seen.append(time.process_time() - start)
        times[table.backend] = statistics.median(seen[1:]) / images * 1e3
    return times


def auto_path(files: List[Path], size: int, device: torch.device) -> Tuple[str, str]:
    """The path data.crop_on='auto' takes on ``device``, decided as a run decides it, and why."""
    notes = []

    def measure():
        timing = time_crop_paths(ImageSet("train", files[0].parent, files, [0] * len(files)), size, "bicubic",
                                 load_config(None, {}).train, device)
        notes.append(timing.describe())
        return timing

    place = crop_place("auto", device, measure)
    return place, notes[0] if notes else f"off CUDA 'auto' is the worker path, untimed"


def main() -> None:
    """Time the paths side by side and print per-core rates, ratios and the headline of the 'auto' path."""
    args = parse_args()
    torch.set_num_threads(1)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {os.cpu_count()} cores"
    size = args.image_size
    transforms = {"float": float_transforms(size),
                  "worker": {"train": build_train_transform(size), "eval": build_eval_transform(size)},
                  "device": {"train": TrainCropPlans(size), "eval": EvalCropPlans(size)}}
    decoders = {"float": pillow_decode, "worker": decode_rgb, "device": decode_rgb}
    # The worker path writes into slots of shared memory the main process lends, as a run's loader does. A run
    # makes one ring per pass (an epoch); the persistent loader here keeps one for all its passes, so the
    # figures leave out a ring's first page faults (~0.4 s per GiB here, timed once; once per epoch of a run).
    lent = partial(collate, ring=ring_for(args.batch_size, size, workers=1))
    collates = {"float": float_collate, "worker": lent, "device": collate_plans}
    hooks = {"float": None, "worker": None, "device": DeviceCrops(device)}
    runs = {(k, p): [] for k in KINDS for p in PATHS}   # (worker CPU, main CPU, wall) per pass
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        files = write_jpegs(Path(tmp), args.images)
        kb = statistics.mean(f.stat().st_size for f in files) / 1024
        print(f"{args.images} JPEGs 500x375 (mean {kb:.0f} KiB), crop {size}, batch {args.batch_size}, "
              f"{args.rounds} rounds, one DataLoader worker (1 torch thread) per path, consumer on {device} ({name})"
              + (f", CPU look-up {PixelTable(MEAN, STD).backend}" if device.type == "cpu" else ""))
        chosen, why = auto_path(files, size, device)
        passes = {}
        for kind in KINDS:
            for path in PATHS:
                dataset = ImageFiles(files, [0] * len(files), transforms[path][kind], decoders[path])
                loader = one_worker_loader(path, dataset, args.batch_size, collates[path], device)
                passes[(kind, path)] = consumer(path, loader, device, hooks[path])
        for run in passes.values():  # warm-up: worker start, page cache, allocator, kernels
            one_pass(run, device)
        for r in range(args.rounds):
            for kind in KINDS:
                for path in PATHS[r % 3:] + PATHS[:r % 3]:
                    worker, main, wall, n = one_pass(passes[(kind, path)], device)
                    assert n == args.images, f"{path} {kind} delivered {n} of {args.images} images"
                    runs[(kind, path)].append((worker, main, wall))
        del passes
        measure_floor(files, size, args.batch_size, device, args.rounds)
    print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (rates per CPU-second; "
          f"wall-clock ratios beside)")

    def cost(kind: str, path: str, part: slice = slice(0, 2)) -> List[float]:
        return [sum(r[part]) for r in runs[(kind, path)]]

    def rate(kind: str, path: str) -> float:
        return args.images / statistics.median(cost(kind, path))

    def ratio(kind: str, path: str, part: slice = slice(0, 2)) -> float:
        """Median over rounds of float cost / path cost (each round's paths ran back to back)."""
        return statistics.median(f / t for f, t in zip(cost(kind, "float", part), cost(kind, path, part)))

    ms = 1e3 / args.images
    print("img/s per core (worker + main-process CPU)   float  worker  device   worker/float  device/float")
    for kind in KINDS:
        print(f"  {kind:<42} {rate(kind, 'float'):6.1f}  {rate(kind, 'worker'):6.1f}  {rate(kind, 'device'):6.1f}"
              f"   {ratio(kind, 'worker'):12.2f}  {ratio(kind, 'device'):12.2f}   "
              f"(wall {ratio(kind, 'worker', slice(2, 3)):.2f} / {ratio(kind, 'device', slice(2, 3)):.2f})")
    print("CPU ms per image, worker + main process:")
    for kind in KINDS:
        parts = "   ".join(f"{p} {statistics.median(r[0] for r in runs[(kind, p)]) * ms:5.2f} + "
                           f"{statistics.median(r[1] for r in runs[(kind, p)]) * ms:5.2f}" for p in PATHS)
        print(f"  {kind:<6} {parts}")
    if device.type == "cuda":
        print(f"wall ms per image on {name} (synchronised pass): " + "   ".join(
            f"{kind}: " + " ".join(f"{p} {statistics.median(r[2] for r in runs[(kind, p)]) * ms:.2f}" for p in PATHS)
            for kind in KINDS))
    print(f"'auto' on this machine: {chosen} ({why})")
    print(f"pipeline_img_s_per_core={rate('train', chosen):.1f} "
          f"ratio_vs_float_pipeline={ratio('train', chosen):.2f} path={chosen}")


if __name__ == "__main__":
    main()
