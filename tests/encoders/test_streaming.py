"""Loading streams shard by shard: peak RAM stays within 1.1x the checkpoint size."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from probes.testing.checkpoints import random_internvit, save_hf_folder, tiny_config

_MEASURE = """
import json, sys, torch
from probes import load_encoder

def status(field):
    for line in open('/proc/self/status'):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
load_encoder(sys.argv[1], dtype=sys.argv[2], num_layers=1)  # warm up code paths (lazy library pages)
open('/proc/self/clear_refs', 'w').write('5')  # reset the peak (VmHWM) to the current RSS
before = status('VmRSS')
encoder = load_encoder(sys.argv[1], dtype=sys.argv[2])
print(json.dumps({'before': before, 'peak': status('VmHWM'),
                  'model': sum(p.numel() * p.element_size() for p in encoder.parameters())}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_peak_ram_while_loading_is_at_most_1_1x_the_checkpoint(tmp_path, dtype):
    cfg = tiny_config("6b", hidden_size=512, intermediate_size=2048, num_attention_heads=8, num_hidden_layers=8)
    folder = save_hf_folder(random_internvit(cfg).state_dict(), cfg, tmp_path / "big", shards=3, dtype=dtype)
    size = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    assert size > 50e6  # large enough that allocator noise is small against it
    name = str(dtype).removeprefix("torch.")
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(folder), name],
                         capture_output=True, text=True, check=True)
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    assert stats["model"] == pytest.approx(size, rel=0.01)
    print(f"peak while loading: {(stats['peak'] - stats['before']) / size:.3f}x the checkpoint")
    assert stats["peak"] - stats["before"] <= 1.1 * size, stats
