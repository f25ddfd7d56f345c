"""What every image goes through: the resize/crop values and the normalisation's mean/std."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from probes.classification.config import ImageSpec


@dataclass(frozen=True)
class Preprocessing:
    """What every image goes through: the resize/crop (see image_paths), the normalisation on the device."""
    size: int
    interpolation: str
    crop_pct: float
    mean: Sequence[float]
    std: Sequence[float]

    @classmethod
    def resolve(cls, image: ImageSpec, data_config: dict) -> "Preprocessing":
        """The recipe's values, falling back to the encoder's own `data_config` where the recipe says None."""
        return cls(image.size, image.interpolation or data_config.get("interpolation", "bicubic"),
                   image.crop_pct if image.crop_pct is not None else float(data_config.get("crop_pct", 1.0)),
                   tuple(data_config["mean"]), tuple(data_config["std"]))
