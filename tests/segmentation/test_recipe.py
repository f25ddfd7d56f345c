"""The released schedule, step by step: mmengine's composed schedulers against mmcv's poly + warm-up formula."""
from __future__ import annotations

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import PARAM_SCHEDULERS

from probes.config_files import config_dir
from probes.segmentation import config_fill


def _released_lr(i: int, iters: int = 80000, warmup: int = 1500, base: float = 4e-5) -> float:
    """mmcv 1.x PolyLrUpdaterHook(power=1, min_lr=0) with linear warm-up (ratio 1e-6): the warm-up scales
    the poly lr of the same iteration, both computed from iteration 0."""
    regular = base * (1 - i / iters)
    if i >= warmup:
        return regular
    k = (1 - i / warmup) * (1 - 1e-6)
    return regular * (1 - k)


def _lrs(cfg: Config, steps: list[int]) -> dict[int, float]:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=cfg.optim_wrapper.optimizer.lr)
    wrapper = OptimWrapper(optimizer)
    schedulers = [PARAM_SCHEDULERS.build(dict(s, optimizer=wrapper)) for s in cfg.param_scheduler]
    seen, last = {}, max(steps)
    for i in range(last + 1):
        if i in steps:
            seen[i] = optimizer.param_groups[0]["lr"]
        for scheduler in schedulers:
            scheduler.step()
    return seen


def test_the_schedule_is_the_released_poly_times_warmup() -> None:
    cfg = Config.fromfile(str(config_dir("segmentation") / "InternViT-6B-448px-V1-5" / "ade20k_head.py"))
    steps = [0, 1, 2, 750, 1499, 1500, 1501, 40000, 79999]
    for i, lr in _lrs(cfg, steps).items():
        assert lr == pytest.approx(_released_lr(i), rel=1e-9, abs=1e-15), i
    # What the old schedule did (poly starting at 1500) is 1.9% higher right after the warm-up.
    assert _released_lr(1500) == pytest.approx(4e-5 * (1 - 1500 / 80000))


def test_a_shortened_run_keeps_the_shape() -> None:
    cfg = Config.fromfile(str(config_dir("segmentation") / "ade20k_linear.py"))
    config_fill.set_iters(cfg, 800)
    for i, lr in _lrs(cfg, [0, 7, 14, 15, 400, 799]).items():
        assert lr == pytest.approx(_released_lr(i, iters=800, warmup=15), rel=1e-9, abs=1e-15), i
