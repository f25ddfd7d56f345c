"""`probes inspect`: describe an encoder and time one forward pass."""
from __future__ import annotations

import argparse
import time
import torch

from probes.runtime import autocast_for, resolve_device


def register(sub: argparse._SubParsersAction) -> None:
    """Add the encoder subcommands."""
    inspect = sub.add_parser(
        "inspect", help="load an encoder, print its architecture, time a forward pass",
        description="Load an encoder from any source (a local folder or weights file, VERSION=PATH, a hub id, a "
                    "timm model, random:VERSION), print its name, version, weights fingerprint, blocks, width, "
                    "heads, patch, parameters and expected preprocessing, then time one frozen forward pass on "
                    "random images. A local path is never looked up on the hub.")
    inspect.add_argument("encoder",
                         help="folder, VERSION=PATH, ORG/NAME (hub id), timm:<name>[.<tag>] or random:VERSION")
    inspect.add_argument("--weights", default=None,
                         help="weights for a bare VERSION or a timm model (default: none; a timm tag's own)")
    inspect.add_argument("--revision", default=None,
                         help="hub revision (branch, tag or commit) of ORG/NAME (default: the repo's default branch)")
    inspect.add_argument("--num-layers", type=int, default=None,
                         help="use only the first k blocks (default: all)")
    inspect.add_argument("--image-size", type=int, nargs="+", default=None, help="H [W]; default: native")
    inspect.add_argument("--batch-size", type=int, default=2, help="random images per forward pass")
    inspect.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")
    inspect.add_argument("--dtype", default=None, help="float32 | bfloat16 (default: bf16 on GPU)")
    inspect.set_defaults(func=run_inspect)


def describe(encoder: torch.nn.Module) -> str:
    """A one-paragraph description of a loaded encoder."""
    params = sum(p.numel() for p in encoder.parameters())
    cfg = encoder.data_config
    return (f"{encoder.name} ({encoder.version}, weights {encoder.fingerprint}) from {encoder.source}: "
            f"{encoder.num_layers} blocks, width {encoder.embed_dim}, "
            f"{encoder.num_heads} heads, patch {encoder.patch_size}, {params / 1e6:.2f}M params; "
            f"expects {cfg['input_size'][1]}x{cfg['input_size'][2]} {cfg['interpolation']} "
            f"mean={tuple(round(m, 3) for m in cfg['mean'])} std={tuple(round(s, 3) for s in cfg['std'])}")


def run_inspect(args: argparse.Namespace) -> int:
    """Load, describe, and time one frozen forward pass."""
    from probes import load_encoder

    device = resolve_device(args.device)
    encoder = load_encoder(args.encoder, weights=args.weights, revision=args.revision, num_layers=args.num_layers,
                           device=device, dtype=args.dtype)
    print(describe(encoder))
    size = args.image_size or list(encoder.data_config["input_size"][1:])
    height, width = size[0], size[-1]
    images = torch.randn(args.batch_size, 3, height, width, device=device)
    with torch.inference_mode(), autocast_for(device):
        encoder.forward_features(images)  # warm-up
        start = time.perf_counter()
        tokens = encoder.forward_features(images)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    print(f"forward_features: {tuple(images.shape)} -> {tuple(tokens.shape)} in {seconds:.3f}s "
          f"({args.batch_size / seconds:.1f} img/s on {device})")
    return 0

