"""Any timm model behind the same encoder interface as `InternViT` (a baseline row)."""
from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Any, Optional

import timm
import torch
from torch import nn

from probes.encoders.fingerprint import files_fingerprint, seed_fingerprint
from probes.encoders.source import RANDOM_SEED, EncoderSource
from probes.encoders.tensor_files import all_finite
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
        # The pretrained config of the model's tag (mean, std, input size, crop): timm's own data config.
        self.data_config = timm.data.resolve_data_config({}, model=model)
        self.version = f"timm:{name}"
        self.name = self.version
        self.source = "random init"
        self.fingerprint: Optional[str] = None

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


def _check_name(source: EncoderSource) -> None:
    name, tag = source.timm_name, source.timm_tag
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise EncoderSourceError(f"unknown timm model {name!r} (timm {timm.__version__}){hint}")
    if tag is not None and source.timm_model not in timm.list_pretrained(source.timm_model):
        tags = [t.partition(".")[2] for t in timm.list_pretrained(f"{name}.*")]
        raise EncoderSourceError(
            f"timm model {name} has no pretrained tag {tag!r}; its tags: {', '.join(tags) or 'none'}")


def _check_finite(model: nn.Module, file: Path) -> None:
    """timm loads the whole file itself; refuse NaN/Inf weights afterwards, naming the first bad one."""
    for name, tensor in model.state_dict().items():
        if not all_finite(tensor):
            raise CheckpointError(f"{file}: weights for {name} hold NaN or Inf values (a bad download?)")


def pretrained_cfg(model_name: str) -> dict[str, Any]:
    """timm's pretrained config of `<name>[.<tag>]` (the default tag's without one); {} if it has none."""
    cfg = timm.models.get_pretrained_cfg(model_name)
    return cfg.to_dict() if cfg is not None else {}


def _hub_weights(source: EncoderSource) -> Path:
    """The tag's weight file from the hub cache (downloaded only when allowed), as timm would fetch it."""
    from probes.encoders.hub import fetch_file

    cfg = pretrained_cfg(source.timm_model)
    if not cfg.get("hf_hub_id"):
        where = cfg.get("url") or "nowhere"
        raise EncoderSourceError(f"{source.text} has weights only at {where}, which is not a hub repo: "
                                 "download them and pass weights=FILE")
    repo_id, _, pinned = cfg["hf_hub_id"].partition("@")
    filename = cfg.get("hf_hub_filename")
    if filename == "open_clip_pytorch_model.bin":
        candidates = ["open_clip_model.safetensors", filename]
    elif filename:
        candidates = [filename]
    else:
        candidates = ["model.safetensors", "pytorch_model.bin"]
    return fetch_file(repo_id, candidates, source.revision or pinned or None)


def build_timm_model(model_name: str, **kwargs: Any) -> nn.Module:
    """`timm.create_model` without a classifier, taking any input size where the family can."""
    try:
        return timm.create_model(model_name, num_classes=0, dynamic_img_size=True, **kwargs)
    except TypeError:  # families without dynamic_img_size (convnets) take any size anyway
        return timm.create_model(model_name, num_classes=0, **kwargs)


def describe_timm(source: EncoderSource) -> TimmEncoder:
    """The encoder's shape and data config, built on the meta device (no memory, no weights, no warning)."""
    _check_name(source)
    with torch.device("meta"):
        return TimmEncoder(build_timm_model(source.timm_model), source.timm_model)


def load_timm_encoder(source: EncoderSource, num_layers: Optional[int] = None,
                      drop_path_rate: Optional[float] = None) -> TimmEncoder:
    """Build `timm:<name>[.<tag>]` with weights from `weights=` or (with a tag) the hub cache; else seeded random."""
    _check_name(source)
    kwargs = {} if drop_path_rate is None else {"drop_path_rate": drop_path_rate}
    weights = source.weights
    if weights is None and source.timm_tag is not None:
        weights = _hub_weights(source)
    if weights is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            model = build_timm_model(source.timm_model, **kwargs)
        encoder = TimmEncoder(model, source.timm_model)
        encoder.source = f"random init (seed {RANDOM_SEED})"
        encoder.fingerprint = seed_fingerprint(encoder.version, RANDOM_SEED)
        log.warning("%s has no weights given: seeded random initialisation (seed %d, the same weights on every "
                    "run, so --resume continues against the same encoder); a chance-level baseline",
                    source.text, RANDOM_SEED)
    else:
        file = _weights_file(Path(weights))
        try:
            model = build_timm_model(source.timm_model, pretrained=True,
                                     pretrained_cfg_overlay={"file": str(file)}, **kwargs)
        except RuntimeError as exc:
            raise CheckpointError(f"could not load {file} into {source.text} ({str(exc).splitlines()[0]})") from None
        _check_finite(model, file)
        encoder = TimmEncoder(model, source.timm_model)
        encoder.source = str(file)
        encoder.fingerprint = files_fingerprint([file])
    if num_layers is not None and num_layers < encoder.num_layers:
        log.info("%s: using the first %d of %d blocks", source.text, num_layers, encoder.num_layers)
        encoder.prune_intermediate_layers([num_layers - 1])
    return encoder

