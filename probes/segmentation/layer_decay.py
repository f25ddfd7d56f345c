"""Layer-wise lr decay (BEiT ids) as an mmengine optimizer-wrapper constructor."""
from __future__ import annotations

import logging
import re
from typing import Optional

from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn

log = logging.getLogger(__name__)

# Encoder parameter names (relative to the backbone's `encoder.`): InternViT and timm layouts.
_EMBEDDING = re.compile(r"^(embeddings\.|model\.(patch_embed|cls_token|pos_embed|reg_token|mask_token)\b)")
_BLOCK = re.compile(r"^(encoder\.layers|model\.blocks)\.(\d+)\.")
# The released constructor *means* to exempt these from weight decay, but compares full parameter
# names ("backbone.pos_embed") with bare ones ("pos_embed"), so the published runs decayed them.
# `paramwise_cfg.exempt_embeddings_from_decay=True` applies the intended exemption (a protocol change).
_EMBEDDING_NAMES = re.compile(r"(position_embedding|class_embedding|pos_embed|cls_token|reg_token)$")
_BACKBONE_PREFIX = "backbone.encoder."


def layer_id(name: str, num_layers: int) -> int:
    """BEiT layer id of a model parameter: embeddings 0, block i -> i + 1, anything else num_layers + 1."""
    if not name.startswith(_BACKBONE_PREFIX):
        return num_layers + 1
    rest = name[len(_BACKBONE_PREFIX):]
    if _EMBEDDING.match(rest):
        return 0
    block = _BLOCK.match(rest)
    if block:
        return int(block.group(2)) + 1
    return num_layers + 1


def skips_weight_decay(name: str, ndim: int, exempt_embeddings: bool = False) -> bool:
    """1-D params (norms, layer scales) and biases get no weight decay; embeddings only if exempted."""
    return ndim == 1 or name.endswith(".bias") or (exempt_embeddings and bool(_EMBEDDING_NAMES.search(name)))


class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Param groups by (layer id, decay/no-decay); lr scale = rate ** (num_layers + 1 - id).

    paramwise_cfg: `num_layers` (blocks of the backbone in use; required when rate != 1),
    `layer_decay_rate` (1.0 = no decay, as in linear probing and head tuning) and
    `exempt_embeddings_from_decay` (default False, as the published runs). Frozen parameters are left
    out of the optimizer altogether.
    """

    def add_params(self, params: list[dict], module: nn.Module, prefix: str = "", is_dcn_module: Optional[int] = None) -> None:
        """Fill `params` with one group per (layer id, weight-decay flag)."""
        rate = float(self.paramwise_cfg.get("layer_decay_rate", 1.0))
        num_layers = self.paramwise_cfg.get("num_layers")
        if num_layers is None:
            if rate != 1.0:
                raise ValueError("paramwise_cfg.num_layers is required with layer_decay_rate != 1")
            num_layers = 0
        weight_decay = self.base_wd or 0.0
        exempt = bool(self.paramwise_cfg.get("exempt_embeddings_from_decay", False))
        groups: dict[tuple[int, bool], dict] = {}
        for name, param in module.named_parameters(prefix=prefix.rstrip(".")):
            if not param.requires_grad:
                continue
            lid = layer_id(name, num_layers)
            no_decay = skips_weight_decay(name, param.ndim, exempt)
            key = (lid, no_decay)
            if key not in groups:
                scale = rate ** (num_layers + 1 - lid)
                groups[key] = {"params": [], "param_names": [], "layer_id": lid, "lr_scale": scale,
                               "lr": self.base_lr * scale, "weight_decay": 0.0 if no_decay else weight_decay}
            groups[key]["params"].append(param)
            groups[key]["param_names"].append(name)
        for key in sorted(groups):
            params.append(groups[key])
        log.debug("layer decay %.3f over %d blocks: %d param groups", rate, num_layers, len(groups))
