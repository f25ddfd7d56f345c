"""Data pipeline per worker core: uint8 workers (normalised on the device) vs today's float workers.

Both paths decode the same generated 500x375 JPEGs with PIL and crop them with the same seeded
torchvision transforms; "float" then converts to float and normalises in the worker (ToTensor +
Normalize and a plain torch.stack, the pipeline before DeviceBatches), "uint8" is the package's
path: PILToTensor, stacked straight into shared memory, float conversion and normalisation left
to the accelerator. Each path is a real DataLoader with ONE worker process (one torch thread), so
a rate is per worker core and includes the hand-over to the main process, which only receives.
The two paths alternate round by round (order rotated) so that machine drift hits both alike;
the ratio is the median of the per-round ratios.

A throughput model follows: the cores needed to feed one 8-GPU H100 node running the frozen
encoder forward, from each model's FLOPs (computed from its architecture) at 55% of the H100's
dense bf16 peak.

    python benchmarks/data_pipeline.py --quick        # < 2 min
    python benchmarks/data_pipeline.py --images 256 --rounds 9

Last line: `pipeline_img_s_per_core=X ratio_vs_float_pipeline=Y` (training transform, uint8 path).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms as T

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes.classification.images import (  # noqa: E402
    ImageFiles, build_eval_transform, build_train_transform, collate)
from probes.encoders.versions import VERSIONS  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
H100_BF16_DENSE_FLOPS = 989e12
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


def one_pass(loader: DataLoader) -> float:
    """Seconds for one epoch as the main process receives it."""
    torch.manual_seed(0)  # the worker's seed comes from here: the same crops for both paths
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


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
    """Time both paths side by side, print rates, ratios and the cores-per-node model."""
    args = parse_args()
    torch.set_num_threads(1)
    n_images = args.images or (96 if args.quick else 256)
    rounds = args.rounds or (5 if args.quick else 9)
    paths = {"float": float_transforms(args.image_size), "uint8": uint8_transforms(args.image_size)}
    rates: Dict[str, Dict[str, List[float]]] = {k: {p: [] for p in paths} for k in ("train", "eval")}
    ratios: Dict[str, List[float]] = {k: [] for k in rates}
    with tempfile.TemporaryDirectory() as tmp:
        files = write_jpegs(Path(tmp), n_images)
        kb = statistics.mean(f.stat().st_size for f in files) / 1024
        print(f"{n_images} JPEGs 500x375 (mean {kb:.0f} KiB), crop {args.image_size}, batch "
              f"{args.batch_size}, {rounds} rounds, one DataLoader worker (1 torch thread) per path")
        collates = {"float": float_collate, "uint8": collate}
        loaders = {(kind, path): one_worker_loader(ImageFiles(files, [0] * len(files), tfs[kind]),
                                                   args.batch_size, collates[path])
                   for path, tfs in paths.items() for kind in rates}
        for loader in loaders.values():  # warm-up: worker start, page cache, allocator
            one_pass(loader)
        names = list(paths)
        for r in range(rounds):
            for kind in rates:
                seconds = {}
                for path in names[r % 2:] + names[:r % 2]:
                    seconds[path] = one_pass(loaders[(kind, path)])
                    rates[kind][path].append(n_images / seconds[path])
                ratios[kind].append(seconds["float"] / seconds["uint8"])
    per_core = {kind: {p: statistics.median(v) for p, v in by_path.items()} for kind, by_path in rates.items()}
    ratio = {kind: statistics.median(v) for kind, v in ratios.items()}
    for kind in rates:
        print(f"{kind:>5}: float {per_core[kind]['float']:6.1f} img/s/core   uint8 "
              f"{per_core[kind]['uint8']:6.1f} img/s/core   ratio {ratio[kind]:.2f} "
              f"(per-round {min(ratios[kind]):.2f}..{max(ratios[kind]):.2f})")

    print(f"throughput model: forward only (frozen encoder), {MFU:.0%} of {H100_BF16_DENSE_FLOPS / 1e12:.0f} "
          f"TFLOP/s dense bf16 per H100, {GPUS_PER_NODE} GPUs per node")
    for name in ("InternViT-300M-448px", "InternViT-6B-448px-V2_5"):
        flops = forward_flops(name)
        node = GPUS_PER_NODE * MFU * H100_BF16_DENSE_FLOPS / flops
        cores = "  ".join(f"{kind} {node / per_core[kind]['uint8']:5.1f} (float {node / per_core[kind]['float']:5.1f})"
                          for kind in rates)
        print(f"  {name:<24} {flops / 1e12:6.2f} TFLOP/img  {node:7.0f} img/s/node  cores needed: {cores}")
    print(f"pipeline_img_s_per_core={per_core['train']['uint8']:.1f} ratio_vs_float_pipeline={ratio['train']:.2f}")


if __name__ == "__main__":
    main()
