"""Encoder forward throughput: ours vs timm's vit_intern300m vs the official eager implementation.

All three get the same weights, dtype, batch and input size and are timed side by side in one
run, interleaved round by round so that machine drift hits them alike. "Official eager" is
transformers' InternVLVisionModel with eager (matmul-softmax) attention, the official
InternViT code path when flash-attn is absent. timm has no 6B variant, so `--model 6b` reports
only the eager ratio.

    python benchmarks/encoder_throughput.py --quick          # CPU, reduced-depth 300M shape
    python benchmarks/encoder_throughput.py --device cuda --model 300m --image-size 448
    python benchmarks/encoder_throughput.py --device cuda --model 6b --depth 45 --image-size 448
    python benchmarks/encoder_throughput.py --smoke          # seconds: 1 block at 56px (figures meaningless)

Last line: `ratio_vs_timm=X.XX ratio_vs_eager=Y.YY` (throughput ours / theirs).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes import load_encoder  # noqa: E402
from probes.encoders.versions import VERSIONS  # noqa: E402
from probes.runtime import autocast_for, resolve_device  # noqa: E402
from probes.testing.checkpoints import save_hf_folder  # noqa: E402
from probes.testing.references import (  # noqa: E402
    hf_state_from_transformers, timm_state_from_hf, transformers_reference)


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CPU-sized run (< 3 min): 300M shape, 4 blocks")
    parser.add_argument("--smoke", action="store_true",
                        help="toy run (1 block, 56px, batch 1, 1 round on CPU): proves the script runs")
    parser.add_argument("--model", choices=("300m", "6b"), default="300m")
    parser.add_argument("--depth", type=int, default=None, help="blocks (default: the real depth)")
    parser.add_argument("--image-size", type=int, default=None, help="default 448 (56 with --smoke)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per model")
    parser.add_argument("--device", default=None)
    return parser.parse_args()


def timm_model(cfg, state, device, dtype):
    """timm's vit_intern300m at this shape with our weights."""
    import timm

    model = timm.create_model(
        "vit_intern300m_patch14_448", pretrained=False, num_classes=0, img_size=cfg.image_size,
        embed_dim=cfg.hidden_size, depth=cfg.num_hidden_layers, num_heads=cfg.num_attention_heads,
        mlp_ratio=cfg.intermediate_size / cfg.hidden_size, init_values=cfg.initializer_factor)
    model.load_state_dict(timm_state_from_hf(state, cfg))
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def time_round(forward, images, device) -> float:
    """Seconds for one forward pass."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    forward(images)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    """Build the three models, check they agree, time them, print the ratios."""
    args = parse_args()
    device = resolve_device(args.device or ("cpu" if args.quick or args.smoke else None))
    base = VERSIONS["InternViT-300M-448px" if args.model == "300m" else "InternViT-6B-448px-V2_5"]
    depth = args.depth or (1 if args.smoke else 4 if args.quick else base.num_hidden_layers)
    image_size = args.image_size or (56 if args.smoke else 448)
    cfg = base.replace(num_hidden_layers=depth, image_size=image_size)
    batch = args.batch_size or (1 if args.smoke else 2 if device.type == "cpu" else 32)
    rounds = args.rounds or (1 if args.smoke else 5 if device.type == "cpu" else 20)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32

    with torch.device("cpu"):
        eager = transformers_reference(cfg, seed=0, attn="eager")
    state = hf_state_from_transformers(eager, cfg)
    eager = eager.to(device=device, dtype=dtype).requires_grad_(False)
    with tempfile.TemporaryDirectory() as tmp:
        ours = load_encoder(save_hf_folder(state, cfg, Path(tmp) / "hf"), device=device, dtype=dtype)
    models = {"ours": ours.forward_features, "eager": lambda x: eager(pixel_values=x).last_hidden_state}
    if args.model == "300m":
        models["timm"] = timm_model(cfg, state, device, dtype).forward_features
    del state

    images = torch.randn(batch, 3, cfg.image_size, cfg.image_size, device=device)
    print(f"device={device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}, "
          f"{torch.get_num_threads()} threads) model={args.model} width={cfg.hidden_size} depth={depth} "
          f"image={cfg.image_size} batch={batch} dtype={dtype} rounds={rounds}")
    times: dict[str, list[float]] = {name: [] for name in models}
    peak: dict[str, float] = {}
    with torch.inference_mode(), autocast_for(device):
        outputs = {name: forward(images).float() for name, forward in models.items()}  # warm-up + agreement
        for name in models:
            print(f"max |{name} - ours| = {(outputs[name] - outputs['ours']).abs().max().item():.2e}")
        del outputs
        names = list(models)
        for round_index in range(rounds):
            # Rotate the order each round: whoever runs after the eager model's large attention
            # matrices finds colder caches, and that should not always be the same model.
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                forward = models[name]
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                times[name].append(time_round(forward, images, device))
                if device.type == "cuda":
                    peak[name] = torch.cuda.max_memory_allocated(device) / 2**30
    throughput = {name: batch / statistics.median(t) for name, t in times.items()}
    for name, value in throughput.items():
        memory = f", peak {peak[name]:.2f} GiB" if name in peak else ""
        print(f"{name:>5}: {value:8.2f} img/s (median of {rounds}){memory}")
    vs_timm = f"{throughput['ours'] / throughput['timm']:.2f}" if "timm" in throughput else "n/a"
    print(f"ratio_vs_timm={vs_timm} ratio_vs_eager={throughput['ours'] / throughput['eager']:.2f}")


if __name__ == "__main__":
    main()
