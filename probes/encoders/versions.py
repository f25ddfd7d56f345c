"""The published InternViT versions, as data (the README's supported-versions table), and their hub org."""
from __future__ import annotations

from typing import Optional

from probes.encoders.architecture import InternViTConfig

_300M = InternViTConfig(
    hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
    image_size=448, qkv_bias=True, qk_normalization=False, norm_type="layer_norm",
    initializer_factor=1.0)
_6B = InternViTConfig(
    hidden_size=3200, intermediate_size=12800, num_hidden_layers=48, num_attention_heads=25,
    image_size=448, qkv_bias=False, qk_normalization=True, norm_type="rms_norm",
    initializer_factor=0.1)

VERSIONS: dict[str, InternViTConfig] = {
    "InternViT-300M-448px": _300M,
    "InternViT-300M-448px-V2_5": _300M,
    "InternViT-6B-224px": _6B.replace(image_size=224),
    # 48 blocks are stored; the published probes use the first 45 (classification configs say so).
    "InternViT-6B-448px-V1-0": _6B,
    "InternViT-6B-448px-V1-2": _6B.replace(num_hidden_layers=45),
    "InternViT-6B-448px-V1-5": _6B.replace(num_hidden_layers=45),
    "InternViT-6B-448px-V2_5": _6B.replace(num_hidden_layers=45),
}
HUB_ORG = "OpenGVLab"  # every published version lives at OpenGVLab/<version name> on the Hugging Face hub


def matching_version(config: InternViTConfig) -> Optional[str]:
    """The first published version with exactly this architecture (versions sharing one share configs)."""
    # LayerScale init and drop path do not change what a checkpoint holds or computes.
    plain = config.replace(drop_path_rate=0.0, initializer_factor=0.0)
    return next((name for name, arch in VERSIONS.items() if arch.replace(initializer_factor=0.0) == plain), None)
