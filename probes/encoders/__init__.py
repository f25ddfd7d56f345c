"""Vision encoders: InternViT (every published layout) and any timm model, one interface."""
from probes.encoders.config import InternViTConfig
from probes.encoders.internvit import InternViT
from probes.encoders.loader import load_encoder
from probes.encoders.versions import VERSIONS

__all__ = ["InternViT", "InternViTConfig", "VERSIONS", "load_encoder"]
