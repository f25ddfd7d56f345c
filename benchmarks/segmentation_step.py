"""One segmentation training step: head tuning vs full tuning and linear probing vs full tuning.

Same encoder, batch and crop for the three modes; each mode runs in its own subprocess (so peak memory
is its own), builds the real mmseg model from the suite's configs, the real optimizer (layer-decay
constructor, AdamW) and times `model.train_step` (preprocess, forward, loss, backward, AdamW update)
after one warm-up step. Memory: peak RSS above the post-import baseline on CPU (weights, gradients,
optimizer state, activations); `torch.cuda.max_memory_allocated` on GPU.

    python benchmarks/segmentation_step.py --quick        # CPU, < 3 min: 300M shape, crop 224, UPerHead 320 ch
    python benchmarks/segmentation_step.py --device cuda --encoder random:InternViT-6B-224px --num-layers 12
    python benchmarks/segmentation_step.py --smoke        # toy run: proves the script works (figures meaningless)

Goals (benchmarks/RESULTS.md, segmentation_step): head <= 0.5 x time and <= 0.35 x memory of full tuning.
Last line: `head_time_ratio=… head_memory_ratio=… linear_time_ratio=… linear_memory_ratio=…`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CPU-sized run (< 3 min)")
    parser.add_argument("--smoke", action="store_true", help="toy run: 4 blocks, crop 56, UPerHead 32 ch")
    parser.add_argument("--encoder", default=None, help="random:VERSION or any load_encoder source")
    parser.add_argument("--num-layers", type=int, default=None, help="encoder blocks (default: all)")
    parser.add_argument("--crop", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--channels", type=int, default=None, help="UPerHead channels (recipe 1536)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps after one warm-up step")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--worker", choices=("linear", "head", "full"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # Quick: the 300M shape (24 blocks), crop 224, UPerHead at 320 channels. That keeps the head/encoder
    # forward-FLOP ratio of the real recipe (6B at 504 with 1536 channels: ~0.37), so the ratios mean the
    # same thing at a CPU-sized cost. (At 1536 or 512 channels the head alone outweighs this small encoder.)
    quick = dict(encoder="random:InternViT-300M-448px", num_layers=None, crop=224, batch_size=2, channels=320, steps=1)
    full = dict(encoder="random:InternViT-6B-224px", num_layers=None, crop=504, batch_size=2, channels=1536, steps=3)
    smoke = dict(quick, num_layers=4, crop=56, channels=32)
    for key, value in (smoke if args.smoke else quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def run_worker(args: argparse.Namespace) -> dict:
    """Build one mode's model and optimizer, time its training steps; returns seconds and bytes."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from probes.config_files import config_dir
    from probes.segmentation import config_fill
    from probes.segmentation.mm_compat import import_mmseg

    import_mmseg()
    init_default_scope("mmseg")
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
    from mmseg.structures import SegDataSample

    from probes.encoders import describe_source

    device = torch.device(args.device)
    baseline = _rss_kib("VmRSS")
    info = describe_source(args.encoder)
    cfg = Config.fromfile(str(config_dir("segmentation") / f"ade20k_{args.worker}.py"))
    cfg.model.backbone.update(source=args.encoder, num_layers=args.num_layers)
    if device.type == "cuda" and args.worker != "full":
        cfg.model.backbone.dtype = "bfloat16"   # as `probes segment` stores a frozen encoder on GPU
    config_fill.fill_encoder(cfg, args.worker, info)
    config_fill.set_crop(cfg, args.crop, info.patch_size)
    if args.worker != "linear":
        # The recipe gives the UPerHead and the auxiliary FCN head the same width (1536).
        cfg.model.decode_head.channels = cfg.model.auxiliary_head.channels = args.channels
        for head in ("decode_head", "auxiliary_head"):
            cfg.model[head].norm_cfg = dict(type="BN", requires_grad=True)   # one process: plain BN
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(device).train()
    optim_cfg = cfg.optim_wrapper.copy()
    optim_wrapper = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type=optim_cfg.pop("constructor"), optim_wrapper_cfg=optim_cfg,
        paramwise_cfg=optim_cfg.pop("paramwise_cfg")))(model)
    generator = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(args.batch_size):
        sample = SegDataSample(gt_sem_seg=PixelData(
            data=torch.randint(0, 150, (1, args.crop, args.crop), generator=generator)))
        sample.set_metainfo({"img_shape": (args.crop,) * 2, "pad_shape": (args.crop,) * 2})
        samples.append(sample)
    images = [torch.randint(0, 256, (3, args.crop, args.crop), dtype=torch.uint8, generator=generator)
              for _ in range(args.batch_size)]
    batch = {"inputs": images, "data_samples": samples}

    def step() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.train_step(batch, optim_wrapper)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    step()   # warm-up: allocates AdamW state, first-call overheads
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = [step() for _ in range(args.steps)]
    memory = (torch.cuda.max_memory_allocated() if device.type == "cuda"
              else (_rss_kib("VmHWM") - baseline) * 1024)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"mode": args.worker, "seconds": statistics.median(times), "memory": memory, "trainable": trainable}


def main() -> None:
    """Run the three modes in subprocesses and print their ratios to full tuning."""
    args = parse_args()
    if args.worker:
        print(json.dumps(run_worker(args)))
        return
    print(f"encoder {args.encoder} (blocks: {args.num_layers or 'all'}), crop {args.crop}, batch {args.batch_size}, "
          f"UPerHead {args.channels} ch, device {args.device}, median of {args.steps} steps after 1 warm-up")
    results = {}
    for mode in ("full", "head", "linear"):
        cmd = [sys.executable, __file__, "--worker", mode, "--encoder", args.encoder, "--crop", str(args.crop),
               "--batch-size", str(args.batch_size), "--channels", str(args.channels), "--steps", str(args.steps),
               "--device", args.device]
        if args.num_layers:
            cmd += ["--num-layers", str(args.num_layers)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{mode} worker failed:\n{done.stderr[-3000:]}")
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        r = results[mode]
        print(f"{mode:>6}: {r['seconds']:.3f} s/step, peak memory {r['memory'] / 2**30:.2f} GiB, "
              f"{r['trainable'] / 1e6:.1f}M trainable params", flush=True)
    full = results["full"]
    ratios = {f"{m}_{k}_ratio": results[m][src] / full[src]
              for m in ("head", "linear") for k, src in (("time", "seconds"), ("memory", "memory"))}
    print(f"goals: head time <= 0.5 ({'met' if ratios['head_time_ratio'] <= 0.5 else 'NOT met'}), "
          f"head memory <= 0.35 ({'met' if ratios['head_memory_ratio'] <= 0.35 else 'NOT met'})")
    print(" ".join(f"{k}={v:.3f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
