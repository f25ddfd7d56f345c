"""Data pipeline per worker core: uint8 workers (normalised on the device) vs today's float workers.

All paths decode the same generated 500x375 JPEGs with Pillow and draw the same seeded crops, and
all produce the same pixels:
- "float", the pipeline before DeviceBatches: ToTensor + Normalize in the worker, a plain
  torch.stack;
- "uint8" (data.crop_on='worker', the default off CUDA): Pillow resizes in the worker,
  PILToTensor, stacked straight into shared memory; float conversion and normalisation are left
  to the accelerator;
- "device" (data.crop_on='device', the default on CUDA): the worker decodes, crops and computes
  Pillow's resampling weights; the accelerator resizes (exactly, probes.classification.pil_resample)
  and normalises. Its device-side cost is modelled from its float64 FLOPs (and timed on this CPU,
  where it is slower than Pillow: why CPU runs keep crops in the workers).
Each path is a real DataLoader with ONE worker process (one torch thread): a rate is images per
CPU-second of that worker (read from /proc, so other jobs on a shared machine inflate it less
than wall time) and includes the hand-over to the main process. The paths alternate round by
round (order swapped) so that machine drift hits both alike; a ratio is the median of per-round
ratios.

A throughput model follows: the cores needed to feed one 8-GPU H100 node running the frozen
encoder forward, from each model's FLOPs (computed from its architecture) at 55% of the H100's
dense bf16 peak.

    python benchmarks/data_pipeline.py --quick        # < 2 min
    python benchmarks/data_pipeline.py --images 256 --rounds 9

Last line: `pipeline_img_s_per_core=X ratio_vs_float_pipeline=Y` (training transform, the path a
CUDA run takes: "device").
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms as T

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes.classification.device_crops import (  # noqa: E402
    DeviceCrops, EvalCropPlans, TrainCropPlans, collate_plans)
from probes.classification.images import (  # noqa: E402
    ImageFiles, build_eval_transform, build_train_transform, collate, decode_rgb)
from probes.encoders.versions import VERSIONS  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
H100_BF16_DENSE_FLOPS = 989e12
H100_FP64_TENSOR_FLOPS = 67e12  # SXM; the resampling products run in float64
MFU = 0.55
GPUS_PER_NODE = 8


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (< 2 min)")
    parser.add_argument("--images", type=int, default=None, help="generated JPEGs per pass")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=16, help="images per collated batch")
    parser.add_argument("--image-size", type=int, default=448)
    return parser.parse_args()


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


def uint8_transforms(size: int) -> Dict[str, Callable]:
    """The package's worker transforms: crop, uint8 out."""
    return {"train": build_train_transform(size), "eval": build_eval_transform(size)}


def device_transforms(size: int) -> Dict[str, Callable]:
    """Worker halves of the device path: crop and plan; the resize happens on the accelerator."""
    return {"train": TrainCropPlans(size), "eval": EvalCropPlans(size)}


def resample_flops(batches: List[dict]) -> float:
    """Mean float64 FLOPs per image of the device's two products (padded to each batch's largest input)."""
    total, images = 0.0, 0
    for b in batches:
        h, w = (int(v) for v in b["shapes"][:, :2].max(0).values)
        rows, cols = b["y_first"].shape[1], b["x_first"].shape[1]
        n = len(b["shapes"])
        # Horizontal first: [3,h,w]@[w,cols] then [rows,h]@[3,h,cols] (the other order costs alike).
        total += n * 2.0 * 3 * (h * w * cols + rows * h * cols)
        images += n
    return total / images


def pillow_decode(path: Path) -> Image.Image:
    """The decoder before this change."""
    with Image.open(path) as img:
        return img.convert("RGB")


def float_collate(batch):
    """The collate before this change: torch.stack, moved to shared memory when pickled."""
    good = [b for b in batch if b[3] is None]
    return {"images": torch.stack([b[0] for b in good]),
            "targets": torch.tensor([b[1] for b in good], dtype=torch.long),
            "indices": torch.tensor([b[2] for b in good], dtype=torch.long),
            "errors": [b[3] for b in batch if b[3] is not None]}


def one_worker_loader(dataset: ImageFiles, batch_size: int, collate_fn: Callable) -> DataLoader:
    """A DataLoader whose single worker process stands for one core."""
    return DataLoader(dataset, batch_size=batch_size, num_workers=1, collate_fn=collate_fn,
                      persistent_workers=True, prefetch_factor=2)


def workers_cpu_seconds() -> float:
    """CPU seconds used so far by this process's children (the DataLoader workers), from /proc."""
    ticks = 0
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except FileNotFoundError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def one_pass(loader: DataLoader) -> Tuple[float, float]:
    """(worker CPU seconds, wall seconds) for one epoch as the main process receives it."""
    torch.manual_seed(0)  # the worker's seed comes from here: the same crops for every path
    cpu, wall = workers_cpu_seconds(), time.perf_counter()
    for _ in loader:
        pass
    return workers_cpu_seconds() - cpu, time.perf_counter() - wall


def forward_flops(name: str, image_size: int = 448) -> float:
    """Forward FLOPs of one image through the encoder: patch embedding + blocks (2 FLOPs a MAC)."""
    v = VERSIONS[name]
    c, mlp = v.hidden_size, v.intermediate_size
    patches = (image_size // v.patch_size) ** 2
    n = patches + 1  # + class token
    embed = patches * 3 * v.patch_size ** 2 * c
    # qkv + proj (4C^2) and the MLP (2CI) per token; QK^T and AV (2N^2C) per block.
    block = n * (4 * c * c + 2 * c * mlp) + 2 * n * n * c
    return 2.0 * (embed + v.num_hidden_layers * block)


def main() -> None:
    """Time the paths side by side, print rates, ratios and the cores-per-node model."""
    args = parse_args()
    torch.set_num_threads(1)
    n_images = args.images or (96 if args.quick else 256)
    rounds = args.rounds or (6 if args.quick else 9)
    # path -> (transforms, decoder, collate)
    paths = {"float": (float_transforms(args.image_size), pillow_decode, float_collate),
             "uint8": (uint8_transforms(args.image_size), decode_rgb, collate),
             "device": (device_transforms(args.image_size), decode_rgb, collate_plans)}
    kinds = ("train", "eval")
    cpu = {(k, p): [] for k in kinds for p in paths}   # worker CPU seconds per pass
    wall = {(k, p): [] for k in kinds for p in paths}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        files = write_jpegs(Path(tmp), n_images)
        kb = statistics.mean(f.stat().st_size for f in files) / 1024
        print(f"{n_images} JPEGs 500x375 (mean {kb:.0f} KiB), crop {args.image_size}, batch "
              f"{args.batch_size}, {rounds} rounds, one DataLoader worker (1 torch thread) per path")
        loaders = {(kind, path): one_worker_loader(ImageFiles(files, [0] * len(files), tfs[kind], decode),
                                                   args.batch_size, collate_fn)
                   for path, (tfs, decode, collate_fn) in paths.items() for kind in kinds}
        for loader in loaders.values():  # warm-up: worker start, page cache, allocator
            one_pass(loader)
        names = list(paths)
        for r in range(rounds):
            for kind in kinds:
                for path in names[r % len(names):] + names[:r % len(names)]:
                    used, took = one_pass(loaders[(kind, path)])
                    cpu[(kind, path)].append(used)
                    wall[(kind, path)].append(took)
        del loaders
        device_side = {}
        for kind in kinds:  # the device path's other half, on this CPU and as modelled for an H100
            torch.manual_seed(0)
            plans = ImageFiles(files, [0] * len(files), paths["device"][0][kind])
            batches = [collate_plans([plans[i] for i in range(s, min(s + args.batch_size, len(files)))])
                       for s in range(0, len(files), args.batch_size)]
            resize = DeviceCrops(torch.device("cpu"))
            start = time.process_time()
            for b in batches[:2]:
                resize(b)
            cpu_ms = 1e3 * (time.process_time() - start) / sum(len(b["shapes"]) for b in batches[:2])
            flops = resample_flops(batches)
            device_side[kind] = (cpu_ms, flops, 1e6 * flops / (0.5 * H100_FP64_TENSOR_FLOPS))
    print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (a shared machine: "
          f"rates per worker CPU-second; the wall-clock ratio beside)")

    def rate(kind: str, path: str) -> float:
        return n_images / statistics.median(cpu[(kind, path)])

    def ratio(kind: str, path: str, clock=cpu) -> float:
        """Median over rounds of float time / path time (each round's paths ran back to back)."""
        return statistics.median(f / t for f, t in zip(clock[(kind, "float")], clock[(kind, path)]))

    print("img/s per worker core   float   uint8  device   uint8/float  device/float")
    for kind in kinds:
        print(f"  {kind:<20} {rate(kind, 'float'):6.1f}  {rate(kind, 'uint8'):6.1f}  {rate(kind, 'device'):6.1f}   "
              f"{ratio(kind, 'uint8'):11.2f}  {ratio(kind, 'device'):12.2f}   "
              f"(wall {ratio(kind, 'uint8', wall):.2f} / {ratio(kind, 'device', wall):.2f})")
    print("device path, accelerator side (float64 products, exact; not timed on an accelerator here):")
    forward_us = 1e6 * forward_flops("InternViT-300M-448px") / (MFU * H100_BF16_DENSE_FLOPS)
    for kind in kinds:
        cpu_ms, flops, h100_us = device_side[kind]
        print(f"  {kind:<6} {flops / 1e9:5.2f} GFLOP/img: {h100_us:5.1f} us/img at 50% of an H100's "
              f"{H100_FP64_TENSOR_FLOPS / 1e12:.0f} TFLOP/s float64 (model; {100 * h100_us / forward_us:.1f}% of "
              f"the 300M forward's {forward_us:.0f} us); {cpu_ms:6.1f} ms/img on this CPU")
    print(f"throughput model: frozen-encoder forward at {MFU:.0%} of {H100_BF16_DENSE_FLOPS / 1e12:.0f} "
          f"TFLOP/s (H100 dense bf16), {GPUS_PER_NODE} GPUs per node; cores to feed one node:")
    for name in ("InternViT-300M-448px", "InternViT-6B-448px-V2_5"):
        flops = forward_flops(name)
        node = GPUS_PER_NODE * MFU * H100_BF16_DENSE_FLOPS / flops
        cores = "  ".join(f"{kind} {node / rate(kind, 'device'):5.1f} (uint8 {node / rate(kind, 'uint8'):5.1f}, "
                          f"float {node / rate(kind, 'float'):5.1f})" for kind in kinds)
        print(f"  {name:<24} {flops / 1e12:6.2f} TFLOP/img {node:7.0f} img/s/node   {cores}")
    print(f"pipeline_img_s_per_core={rate('train', 'device'):.1f} "
          f"ratio_vs_float_pipeline={ratio('train', 'device'):.2f}")


if __name__ == "__main__":
    main()
