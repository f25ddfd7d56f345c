"""Loading streams shard by shard: peak RAM stays within 1.1x the checkpoint, below `safe_open`'s.

Why we keep our own safetensors reader (tensor_files.py): `safe_open` memory-maps a shard and every
page it touches stays resident until the shard is closed, so it peaks at model + one shard. Both
loaders are measured here the same way, in a fresh process each.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from probes.encoders.internvit import InternViT
from probes.testing.checkpoints import save_hf_folder, save_safetensors_shards, tiny_config

_MEASURE = """
import gc, json, sys, torch
from probes import load_encoder

def status(field):
    for line in open('/proc/self/status'):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

def with_safe_open(folder, dtype, num_layers=None):
    from safetensors import safe_open
    from probes.encoders.checkpoint import resolve_checkpoint
    from probes.encoders.internvit import InternViT

    spec = resolve_checkpoint(folder)
    with torch.device('meta'):
        model = InternViT(spec.config, num_layers=num_layers)
    model = model.to(dtype=getattr(torch, dtype)).to_empty(device='cpu')
    params = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for file in spec.files:
            with safe_open(str(file), 'pt') as handle:
                for key in handle.keys():
                    if key in params:
                        params[key].data.copy_(handle.get_tensor(key))
    return model

folder, dtype, how = sys.argv[1:]
load = (lambda n=None: load_encoder(folder, dtype=dtype, num_layers=n)) if how == 'ours' else (
    lambda n=None: with_safe_open(folder, dtype, n))
load(1)  # warm up code paths (lazy library pages) on one block; a small allocation, so RSS stays honest
gc.collect()
open('/proc/self/clear_refs', 'w').write('5')  # reset the peak (VmHWM) to the current RSS
before = status('VmRSS')
encoder = load()
print(json.dumps({'before': before, 'peak': status('VmHWM'),
                  'model': sum(p.numel() * p.element_size() for p in encoder.parameters())}))
"""
_BIG = dict(hidden_size=512, intermediate_size=2048, num_attention_heads=8, num_hidden_layers=8)


def _zeros(model: torch.nn.Module, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """A state dict of zeros with `model`'s names and shapes (built on meta: cheap; values do not matter here)."""
    return {k: torch.zeros(v.shape, dtype=dtype) for k, v in model.state_dict().items()}


def _peak_over_size(folder, dtype: str, how: str) -> float:
    size = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    assert size > 50e6  # large enough that allocator noise is small against it
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(folder), dtype, how],
                         capture_output=True, text=True, check=True)
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    assert stats["model"] == pytest.approx(size, rel=0.01)
    return (stats["peak"] - stats["before"]) / size


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_peak_ram_is_at_most_1_1x_the_checkpoint_and_below_safe_open(tmp_path):
    cfg = tiny_config("6b", **_BIG)
    with torch.device("meta"):
        model = InternViT(cfg)
    state = _zeros(model)
    folder = save_hf_folder(state, cfg, tmp_path / "big", shards=3)
    ours, theirs = _peak_over_size(folder, "float32", "ours"), _peak_over_size(folder, "float32", "safe_open")
    print(f"peak while loading, x the checkpoint: ours {ours:.3f}, safe_open {theirs:.3f}")
    assert ours <= 1.1
    assert ours < theirs


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_bf16_checkpoints_stream_the_same_way(tmp_path):
    cfg = tiny_config("6b", **_BIG)
    with torch.device("meta"):
        model = InternViT(cfg)
    state = _zeros(model, torch.bfloat16)
    ours = _peak_over_size(save_hf_folder(state, cfg, tmp_path / "bf16", shards=3), "bfloat16", "ours")
    print(f"peak while loading bf16: {ours:.3f}x the checkpoint")
    assert ours <= 1.1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_merging_q_k_v_of_a_transformers_folder_keeps_the_peak(tmp_path):
    """Each of q, k, v is read straight into its rows of qkv: no second copy of the model."""
    from transformers import InternVLVisionConfig, InternVLVisionModel

    config = InternVLVisionConfig(hidden_size=512, intermediate_size=2048, num_attention_heads=8,
                                  num_hidden_layers=8, image_size=56, attention_bias=True)
    with torch.device("meta"):  # transformers' own names and shapes, without initialising 25M weights
        model = InternVLVisionModel(config)
    state = _zeros(model)
    folder = tmp_path / "tf"
    save_safetensors_shards(state, folder, shards=3)
    (folder / "config.json").write_text(config.to_json_string())
    ours = _peak_over_size(folder, "float32", "ours")
    print(f"peak while loading a transformers folder: {ours:.3f}x the checkpoint")
    assert ours <= 1.1
