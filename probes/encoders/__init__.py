"""Vision encoders: InternViT (every published layout) and any timm model, one interface."""
from probes.encoders.architecture import InternViTConfig
from probes.encoders.describe import EncoderInfo, describe_source
from probes.encoders.internvit import InternViT
from probes.encoders.loader import load_encoder
from probes.encoders.source import EncoderSource, parse_source
from probes.encoders.versions import VERSIONS

__all__ = ["EncoderInfo", "EncoderSource", "InternViT", "InternViTConfig", "VERSIONS", "describe_source",
           "load_encoder", "parse_source"]
