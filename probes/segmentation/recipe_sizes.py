"""The released recipe's sizes (iterations, crop, stride, batch, warm-up, patch), read from the shipped config."""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def recipe() -> dict[str, int]:
    """The released recipe's sizes, read from the shipped generic config (never restated in code).

    `iters`, `crop`, `stride`, total `batch`, `warmup` iterations and the `patch` its sizes are multiples of.
    """
    from probes.config_files import config_dir, load_file

    cfg = load_file(config_dir("segmentation") / "ade20k_head.py")
    divisor = [t["size_divisor"] for t in cfg.val_dataloader.dataset.pipeline if t["type"] == "ResizeToMultiple"]
    # mmengine's LinearLR reaches its end factor at step `end - 1` (schedule_80k.py).
    return {"iters": int(cfg.train_cfg.max_iters), "crop": int(cfg.model.test_cfg.crop_size[0]),
            "stride": int(cfg.model.test_cfg.stride[0]), "batch": int(cfg.train_dataloader.batch_size),
            "warmup": int(cfg.param_scheduler[0]["end"]) - 1, "patch": int(divisor[0])}


def published_crop(patch: int) -> int:
    """The recipe's crop (504 for patch 14); for another patch size the nearest multiple (512 for 16)."""
    return max(patch, round(recipe()["crop"] / patch) * patch)
