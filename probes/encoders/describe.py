"""An encoder's shape and preprocessing, read without loading its weights (configs are chosen from it)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from probes.encoders.checkpoint import CheckpointSpec, checkpoint_spec
from probes.encoders.preprocessing import default_data_config, read_preprocessor_config
from probes.encoders.source import EncoderSource, PathLike, parse_source
from probes.encoders.versions import VERSIONS, matching_version


@dataclass(frozen=True)
class EncoderInfo:
    """What a config needs before the model is built (fields after `version` are filled by `describe_source`).

    The first three come first so the old positional form `EncoderInfo(embed_dim, num_layers, version)`
    still works; `name` defaults to the version.
    """

    embed_dim: int
    num_layers: int
    version: str                                  # the published version, 'custom', or timm:<name>[.<tag>]
    # The published version whose architecture this is (picks the shipped config); None if none matches.
    config_version: Optional[str] = None
    name: Optional[str] = None                    # a readable name (version, repo id, folder name)
    num_heads: Optional[int] = None
    patch_size: Optional[int] = None
    image_size: Optional[tuple[int, int]] = None  # (height, width) the encoder was trained at
    mean: Optional[tuple[float, ...]] = None
    std: Optional[tuple[float, ...]] = None
    interpolation: Optional[str] = None
    crop_pct: Optional[float] = None

    def __post_init__(self) -> None:
        if self.name is None:
            object.__setattr__(self, "name", self.version)


def _with_data_config(data_config: dict, **shape) -> EncoderInfo:
    return EncoderInfo(**shape, image_size=tuple(data_config["input_size"][1:]), mean=tuple(data_config["mean"]),
                       std=tuple(data_config["std"]), interpolation=data_config["interpolation"],
                       crop_pct=float(data_config["crop_pct"]))


def describe(src: EncoderSource, checkpoint: Optional[CheckpointSpec] = None) -> EncoderInfo:
    """Shape, names and preprocessing of a parsed source, from its checkpoint as found (config files, never weights).

    A source that names a checkpoint (`src.names_checkpoint`) is described from `checkpoint`, which its caller
    found once; timm models and the version table describe the rest.
    """
    if src.kind == "timm":
        from probes.encoders.timm_encoder import describe_timm

        enc = describe_timm(src)
        return _with_data_config(enc.data_config, embed_dim=enc.embed_dim, num_layers=enc.num_layers,
                                 version=enc.version, name=enc.name, num_heads=enc.num_heads,
                                 patch_size=enc.patch_size)
    if not src.names_checkpoint:   # random weights or a bare version name: the version table says it all
        cfg, preprocessor = VERSIONS[src.version], None
        name = f"random:{src.version}" if src.kind == "random" else src.version
        version, config_version = src.version, src.version
    else:
        if checkpoint is None:
            raise ValueError(f"the encoder source {src.text!r} is described from its checkpoint; none was given")
        cfg, preprocessor = checkpoint.config, checkpoint.preprocessor
        name, version, config_version = checkpoint.name, checkpoint.version, src.version or matching_version(cfg)
    default = default_data_config(cfg.image_size)
    data_config = read_preprocessor_config(preprocessor, default) if preprocessor is not None else default
    return _with_data_config(data_config, embed_dim=cfg.hidden_size, num_layers=cfg.num_hidden_layers,
                             version=version, config_version=config_version, name=name,
                             num_heads=cfg.num_attention_heads, patch_size=cfg.patch_size)


def describe_source(source: Union[PathLike, EncoderSource], version: Optional[str] = None,
                    weights: Optional[PathLike] = None, revision: Optional[str] = None) -> EncoderInfo:
    """Shape, names and preprocessing of any `load_encoder` source, from config files only (never weights)."""
    src = parse_source(source, version, weights, revision, weights_required=False)
    return describe(src, checkpoint_spec(src, with_weights=False) if src.names_checkpoint else None)
