"""`probes classify --print-config`: every value a run would use, without reading weights or data."""
from __future__ import annotations

from typing import Any

import torch

from probes.classification.config import ClassifyConfig
from probes.classification.live import Preprocessing
from probes.classification.runner import parse_layers, protocol_of
from probes.classification.sweep import head_specs
from probes.config_files import dump_config


def describe_config(cfg: ClassifyConfig, fmt: str = "py") -> str:
    """The resolved config plus what follows from the encoder (blocks, widths, preprocessing, heads, protocol)."""
    from mmengine.config import Config

    from probes.encoders import describe_source

    resolved: dict[str, Any] = cfg.as_dict()
    source = cfg.encoder.source or cfg.encoder.version
    if source:
        info = describe_source(str(source))
        layers = cfg.encoder.num_layers or info.num_layers
        pre = Preprocessing.resolve(cfg.image, {"mean": info.mean, "std": info.std})
        resolved["resolved"] = {
            "encoder": {"version": info.version, "embed_dim": info.embed_dim, "blocks_used": layers,
                        "blocks_in_checkpoint": info.num_layers, "patch_size": info.patch_size},
            "preprocessing": {"size": pre.size, "interpolation": pre.interpolation, "crop_pct": pre.crop_pct,
                              "mean": list(pre.mean), "std": list(pre.std)},
            "heads": [s.key for s in head_specs(cfg.probe.probes, cfg.probe.head_lrs,
                                                parse_layers(cfg.probe.layers, layers))],
            "published_head": f"lr {cfg.probe.published_lr:g}, raw weights, final epoch, block {layers}",
            **protocol_of(cfg, torch.device("cuda")).as_row(),
        }
    return dump_config(Config(resolved), fmt)
