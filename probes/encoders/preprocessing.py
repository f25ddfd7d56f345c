"""The preprocessing an encoder expects, in timm's `data_config` form."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from probes.errors import ConfigError

# Every InternViT checkpoint is trained on ImageNet statistics, not CLIP's (docs/encoders.md, preprocessing).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# PIL resample codes used by Hugging Face image processors.
_PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


def _side(value: Any, origin: Path, field: str) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        for key in ("shortest_edge", "height", "width"):
            if key in value:
                return int(value[key])
    raise ConfigError(f"{origin}: cannot read {field}={value!r}")


def default_data_config(image_size: int) -> dict[str, Any]:
    """InternViT's preprocessing when a checkpoint has no `preprocessor_config.json`: bicubic, full crop."""
    return {"input_size": (3, image_size, image_size), "interpolation": "bicubic",
            "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "crop_pct": 1.0, "crop_mode": "center"}


def read_preprocessor_config(path: Path, default: dict[str, Any]) -> dict[str, Any]:
    """Merge a Hugging Face `preprocessor_config.json` into a timm-style data config."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not readable JSON ({exc})") from None
    config = dict(default)
    if "image_mean" in raw:
        config["mean"] = tuple(float(v) for v in raw["image_mean"])
    if "image_std" in raw:
        config["std"] = tuple(float(v) for v in raw["image_std"])
    if "resample" in raw:
        config["interpolation"] = _PIL_RESAMPLE.get(int(raw["resample"]), "bicubic")
    crop = raw.get("crop_size", raw.get("size"))
    if crop is not None:
        crop_side = _side(crop, path, "crop_size")
        config["input_size"] = (3, crop_side, crop_side)
        resize_side = _side(raw.get("size", crop), path, "size")
        config["crop_pct"] = crop_side / resize_side if raw.get("do_center_crop", True) else 1.0
    return config
