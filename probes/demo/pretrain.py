"""Give the demo's tiny encoders a little training, so that probing them measures something.

A random 48-wide ViT cannot tell handwritten digits apart on photo backgrounds (a logistic
regression on its features stays at chance), so each demo "version" is trained for a few
hundred steps to classify digits (its own half of the digits, never the demo datasets' half),
through a throw-away head on the mean token. Versions differ in the number of steps, as
checkpoints of one encoder at two points of its training do.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from probes.demo.images import DigitPool, digit_image
from probes.encoders.internvit import IMAGENET_MEAN, IMAGENET_STD, InternViT
from probes.testing.checkpoints import tiny_config


def _batch(pool: DigitPool, rng: np.random.Generator, size: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    labels = rng.integers(0, 10, size=batch)
    images = np.stack([np.asarray(digit_image(pool, int(d), size, rng), dtype=np.float32) / 255 for d in labels])
    images = (images - np.array(IMAGENET_MEAN, dtype=np.float32)) / np.array(IMAGENET_STD, dtype=np.float32)
    return torch.from_numpy(images).permute(0, 3, 1, 2), torch.from_numpy(labels)


def pretrained_tiny_encoder(style: str, steps: int, seed: int = 0, batch: int = 32) -> InternViT:
    """A tiny InternViT trained for `steps` AdamW steps on digit classification (seconds on a CPU)."""
    cfg = tiny_config(style)
    torch.manual_seed(seed)
    encoder = InternViT(cfg).train()  # torch's default init, LayerScale at the config's init value
    with torch.no_grad():
        encoder.embeddings.position_embedding.normal_(0, 0.02)
        encoder.embeddings.class_embedding.normal_(0, 0.02)
    head = nn.Linear(cfg.hidden_size, 10)
    optimizer = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=2e-3, weight_decay=0.01)
    pool, rng = DigitPool(seed, part="pretrain"), np.random.default_rng(seed)
    for _ in range(steps):
        images, labels = _batch(pool, rng, cfg.image_size, batch)
        tokens = encoder.forward_features(images)
        # Mean token and each patch token predict the digit, so patch tokens (segmentation) learn it too.
        loss = F.cross_entropy(head(tokens.mean(1)), labels) + \
            F.cross_entropy(head(tokens[:, 1:]).flatten(0, 1), labels.repeat_interleave(tokens.shape[1] - 1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return encoder.eval()
