"""Any timm model behind the same encoder interface as `InternViT` (a baseline row)."""
from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Optional, Union

import timm
import torch
from torch import nn

from probes.errors import CheckpointError, EncoderSourceError

log = logging.getLogger(__name__)
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


class TimmEncoder(nn.Module):
    """Wraps a timm model: tokens from `forward_features`, maps from `forward_intermediates`."""

    def __init__(self, model: nn.Module, name: str) -> None:
        super().__init__()
        self.model = model
        self.embed_dim = int(model.num_features)
        blocks = getattr(model, "blocks", None)
        self.num_layers = len(blocks) if blocks is not None else len(getattr(model, "stages", []))
        attn = getattr(blocks[0], "attn", None) if blocks is not None and len(blocks) else None
        self.num_heads = int(getattr(attn, "num_heads", 1))
        patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
        self.patch_size = int(patch[0]) if patch is not None else int(model.feature_info[-1]["reduction"])
        self.num_prefix_tokens = int(getattr(model, "num_prefix_tokens", 0))
        self.data_config = timm.data.resolve_data_config({}, model=model)
        self.version = f"timm:{name}"
        self.source = "random init"

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, prefix + N, C); convnet maps are flattened to tokens."""
        out = self.model.forward_features(x)
        return out.flatten(2).transpose(1, 2) if out.ndim == 4 else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as `forward_features`."""
        return self.forward_features(x)

    def forward_intermediates(self, x: torch.Tensor, indices=None, **kwargs):
        """Delegates to timm's own `forward_intermediates` (NCHW maps by default)."""
        return self.model.forward_intermediates(x, indices, **kwargs)

    def prune_intermediate_layers(self, indices=1, prune_norm: bool = False, prune_head: bool = True):
        """Delegates to timm; keeps `num_layers` in step."""
        take = self.model.prune_intermediate_layers(indices, prune_norm=prune_norm, prune_head=prune_head)
        blocks = getattr(self.model, "blocks", None)
        if blocks is not None:
            self.num_layers = len(blocks)
        return take

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Delegates to timm."""
        self.model.set_grad_checkpointing(enable)

    def set_input_size(self, image_size: int) -> None:
        """Resize the position table once to `image_size` (timm's own `set_input_size`, where it has one)."""
        if hasattr(self.model, "set_input_size"):
            self.model.set_input_size(img_size=image_size)


def _weights_file(weights: Path) -> Path:
    if weights.is_dir():
        for name in _WEIGHT_FILES:
            if (weights / name).is_file():
                return weights / name
        raise CheckpointError(f"{weights} holds none of {', '.join(_WEIGHT_FILES)}")
    if not weights.is_file():
        raise CheckpointError(f"timm weights {weights} do not exist")
    return weights


def load_timm_encoder(name: str, weights: Optional[Union[str, Path]] = None, num_layers: Optional[int] = None,
                      drop_path_rate: Optional[float] = None) -> TimmEncoder:
    """Build `timm:<name>` with local weights (nothing downloads) or, without, random weights."""
    if name not in timm.list_models():
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise EncoderSourceError(f"unknown timm model {name!r} (timm {timm.__version__}){hint}")
    kwargs = {"num_classes": 0}
    if drop_path_rate is not None:
        kwargs["drop_path_rate"] = drop_path_rate
    if weights is not None:
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(_weights_file(Path(weights)))})
    try:
        model = timm.create_model(name, dynamic_img_size=True, **kwargs)
    except TypeError:  # families without dynamic_img_size (convnets) take any size anyway
        model = timm.create_model(name, **kwargs)
    except RuntimeError as exc:
        raise CheckpointError(f"could not load {weights} into timm:{name} ({str(exc).splitlines()[0]})") from None
    encoder = TimmEncoder(model, name)
    if weights is None:
        log.warning("timm:%s has no weights given: random initialisation (a chance-level baseline)", name)
    else:
        encoder.source = str(weights)
    if num_layers is not None and num_layers < encoder.num_layers:
        log.info("timm:%s: using the first %d of %d blocks", name, num_layers, encoder.num_layers)
        encoder.prune_intermediate_layers([num_layers - 1])
    return encoder

