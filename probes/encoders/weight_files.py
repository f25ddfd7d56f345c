"""Which files of a checkpoint folder (local or on the hub) hold the encoder's weights."""
from __future__ import annotations

from pathlib import Path

from probes.encoders.keymaps import encoder_keys
from probes.encoders.tensor_files import read_weight_map

INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")  # files read as weights (anything else is refused)


def encoder_shard_names(index_path: Path) -> list[str]:
    """The shards of a `*.index.json` that hold encoder tensors (a chat model's LLM-only shards are not needed)."""
    weight_map = read_weight_map(index_path)
    return sorted({weight_map[key] for key in encoder_keys(weight_map, str(index_path))})
