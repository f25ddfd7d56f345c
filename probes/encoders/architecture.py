"""The InternViT architecture as data, read from (and written to) Hugging Face `config.json`."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probes.errors import ConfigError

NORM_TYPES = ("rms_norm", "layer_norm")
_REQUIRED = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
# transformers' own InternVLVisionConfig (docs/encoders.md: both spellings of the fields) names three differently.
_TRANSFORMERS_NAMES = {"attention_bias": "qkv_bias", "use_qk_norm": "qk_normalization",
                       "layer_scale_init_value": "initializer_factor"}
_TRANSFORMERS_ONLY = ("attention_bias", "use_qk_norm", "layer_scale_init_value", "use_mean_pooling")
# A field a config leaves out takes the default of the code that wrote it: the official remote-code
# InternVisionConfig defaults to the 6B style, transformers' InternVLVisionConfig to the 300M style.
_OFFICIAL_DEFAULTS = {"qkv_bias": False, "qk_normalization": True, "norm_type": "rms_norm"}
_TRANSFORMERS_DEFAULTS = {"qkv_bias": False, "qk_normalization": False, "norm_type": "layer_norm",
                          "initializer_factor": 0.1}


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file holding one object (a `config.json`), or one clear error."""
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} does not hold a JSON object")
    return raw


@dataclass(frozen=True)
class InternViTConfig:
    """Every architecture value of an InternViT encoder (field names follow `config.json`)."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    patch_size: int = 14
    image_size: int = 448
    qkv_bias: bool = False
    qk_normalization: bool = True
    norm_type: str = "rms_norm"
    layer_norm_eps: float = 1e-6
    initializer_factor: float = 0.1  # LayerScale init value in the official code
    drop_path_rate: float = 0.0
    # A LayerNorm after the last block: only transformers' InternVLVisionModel with
    # use_mean_pooling=false has one (every published InternViT checkpoint has none).
    final_norm: bool = False

    def __post_init__(self) -> None:
        if self.norm_type not in NORM_TYPES:
            raise ConfigError(f"norm_type must be one of {NORM_TYPES}, got {self.norm_type!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                f"{self.num_attention_heads}")
        if self.image_size % self.patch_size:
            raise ConfigError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")

    @property
    def grid_size(self) -> int:
        """Patches per side at the native image size."""
        return self.image_size // self.patch_size

    def replace(self, **changes: Any) -> "InternViTConfig":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], origin: str = "config") -> "InternViTConfig":
        """Build from a `config.json` dict (official or transformers names); a chat model's `vision_config` is used."""
        if "vision_config" in raw:
            raw = raw["vision_config"]
        missing = [k for k in _REQUIRED if k not in raw]
        if missing:
            raise ConfigError(f"{origin} lacks the InternViT field(s) {', '.join(missing)}")
        act = raw.get("hidden_act", "gelu")
        if act != "gelu":
            raise ConfigError(f"{origin}: hidden_act {act!r} is not supported (InternViT uses exact 'gelu')")
        if raw.get("use_absolute_position_embeddings") is False:
            raise ConfigError(f"{origin}: use_absolute_position_embeddings=false is not supported "
                              "(every InternViT has a learned absolute position embedding)")
        transformers_style = raw.get("model_type") == "internvl_vision" or any(k in raw for k in _TRANSFORMERS_ONLY)
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: raw[k] for k in known if raw.get(k) is not None}
        for theirs, ours in _TRANSFORMERS_NAMES.items():
            if raw.get(theirs) is not None and (transformers_style or ours not in values):
                values[ours] = raw[theirs]
        if raw.get("use_mean_pooling") is not None:
            values["final_norm"] = not raw["use_mean_pooling"]
        for key, default in (_TRANSFORMERS_DEFAULTS if transformers_style else _OFFICIAL_DEFAULTS).items():
            values.setdefault(key, default)
        for key in ("image_size", "patch_size"):
            if isinstance(values.get(key), (list, tuple)):
                side = set(values[key])
                if len(side) != 1:
                    raise ConfigError(f"{origin}: non-square {key} {values[key]} is not supported")
                values[key] = side.pop()
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"{origin}: {exc}") from None

    @classmethod
    def from_file(cls, path: Path) -> "InternViTConfig":
        """Read a `config.json` (plain InternViT, transformers' InternVL, or a whole chat model)."""
        return cls.from_dict(read_json_object(path), origin=str(path))

    def to_hf_dict(self) -> dict[str, Any]:
        """The `config.json` content the official InternViT release writes for this architecture."""
        out = dataclasses.asdict(self)
        out.update(architectures=["InternVisionModel"], model_type="intern_vit_6b", hidden_act="gelu",
                   num_channels=3, attention_dropout=0.0, dropout=0.0, initializer_range=0.02)
        if not self.final_norm:  # the official configs have no such field
            del out["final_norm"]
        return out
