"""mmseg backbone wrapping any `probes.load_encoder` source; returns chosen blocks as NCHW maps."""
from __future__ import annotations

import contextlib
from typing import Optional, Sequence, Union

import torch
from mmengine.model import BaseModule

from probes.errors import ConfigError
from probes.segmentation.precision import bf16_autocast, check_autocast


class ProbeEncoder(BaseModule):
    """A frozen (no grad, bf16 on GPU) or trainable (drop path, checkpointing) vision encoder.

    `bf16_autocast`: where it computes under bf16 autocast (`cuda`: on a GPU, the default; `always`;
    `never`); without autocast it computes in its weights' dtype.

    `out_indices` are block indices (negatives count from the last block); blocks after the last one
    needed are dropped, so linear probing at block 44 of 48 never runs blocks 45..47. `input_size`
    (the crop) fixes the position table's grid at build time, as the released backbone does.
    """

    def __init__(self, source: str, out_indices: Union[int, Sequence[int]] = (-1,), trainable: bool = False,
                 drop_path_rate: float = 0.0, grad_checkpointing: bool = False, num_layers: Optional[int] = None,
                 weights: Optional[str] = None, version: Optional[str] = None, revision: Optional[str] = None,
                 bf16_autocast: str = "cuda", dtype: Optional[str] = None, input_size: Optional[int] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if source is None:
            raise ConfigError("model.backbone.source is not set; pass --encoder SRC")
        from probes.encoders import load_encoder

        self.trainable = trainable
        self.bf16_autocast = check_autocast(bf16_autocast)
        # Any `load_encoder` source, `random:VERSION` (seeded weights, for shape-only uses) included.
        self.encoder = load_encoder(str(source), version=version, weights=weights, revision=revision,
                                    num_layers=num_layers, dtype=dtype,
                                    drop_path_rate=drop_path_rate if trainable else None, trainable=trainable)
        indices = [out_indices] if isinstance(out_indices, int) else list(out_indices)
        depth = self.encoder.num_layers
        self.out_indices = [i if i >= 0 else depth + i for i in indices]
        self.encoder.prune_intermediate_layers(self.out_indices)
        for block in getattr(self.encoder, "blocks", ()):
            # The FSDP strategy shards exactly these (mm_compat.encoder_block_policy): blocks run inside
            # forward, while mmseg calls its heads' `loss`/`predict`, which an FSDP unit would not unshard.
            block.fsdp_unit = True
        if input_size is not None:
            # As released: the position table is resized once to the crop's grid, and that table is the
            # parameter full tuning trains (not the native table resampled at every forward).
            self.encoder.set_input_size(int(input_size))
        if grad_checkpointing:
            self.encoder.set_grad_checkpointing(True)
        if not trainable:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    @property
    def embed_dim(self) -> int:
        """Channels of every returned map."""
        return int(self.encoder.embed_dim)

    def init_weights(self) -> None:
        """Keep the loaded encoder weights: mmengine's init pass must not re-initialise them."""

    def train(self, mode: bool = True) -> "ProbeEncoder":
        """Frozen encoders stay in eval mode (no dropout / drop path) whatever the runner asks."""
        super().train(mode)
        if not self.trainable:
            self.encoder.eval()
        return self


    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> one (B, C, H/p, W/p) float32 map per out index."""
        # Frozen: no_grad rather than inference_mode, because the maps feed trainable heads whose backward
        # must save them; no_grad still keeps none of the encoder's own activations.
        grad = contextlib.nullcontext() if self.trainable else torch.no_grad()
        weight_dtype = next(self.encoder.parameters()).dtype
        autocast = bf16_autocast(self.bf16_autocast, x)
        if autocast is None and x.dtype != weight_dtype:
            x = x.to(weight_dtype)   # e.g. bf16-stored weights run without autocast: compute in bf16
        with grad, autocast or contextlib.nullcontext():
            maps = self.encoder.forward_intermediates(x, self.out_indices, intermediates_only=True)
        return [m.float() for m in maps]

    def frozen_state_prefixes(self) -> tuple[str, ...]:
        """Relative state-dict prefixes that checkpoints may omit (the frozen encoder)."""
        return () if self.trainable else ("encoder.",)
