"""internvit-probes: measure frozen vision encoders by probing them."""
from probes.encoders import load_encoder

__all__ = ["load_encoder"]
__version__ = "0.1.0"
