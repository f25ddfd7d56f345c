"""Workarounds that let mmengine 0.10.7 / mmcv-lite 2.1.0 / mmseg 1.2.2 run on torch 2.14.

docs/segmentation.md ("Known breakages") lists them.
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

OWN_CHECKPOINT_PREFIX = "probes-own://"


def _mmcv_ops_standin() -> types.ModuleType:
    """A pure-torch `mmcv.ops` holding only the names mmseg imports at module level."""
    module = types.ModuleType("mmcv.ops")
    module.__doc__ = ("Stand-in for mmcv.ops installed by probes.segmentation.mm_compat: mmcv-lite ships no "
                      "compiled ops, yet `import mmseg.models` imports a few of them by name.")

    def point_sample(input: torch.Tensor, points: torch.Tensor, align_corners: bool = False,
                     **kwargs: Any) -> torch.Tensor:
        """Sample `input` at normalised [0, 1] `points` (B, P, 2), as mmcv.ops.point_sample does."""
        add_dim = points.dim() == 3
        grid = points.unsqueeze(2) if add_dim else points
        out = F.grid_sample(input, 2.0 * grid - 1.0, align_corners=align_corners, **kwargs)
        return out.squeeze(3) if add_dim else out

    def sigmoid_focal_loss(pred: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
                           alpha: float = 0.25, weight: torch.Tensor | None = None,
                           reduction: str = "mean") -> torch.Tensor:
        """Sigmoid focal loss on class-index targets, the contract of mmcv's compiled kernel."""
        one_hot = F.one_hot(target, pred.size(1)).type_as(pred)
        prob = pred.sigmoid()
        pt = (1 - prob) * one_hot + prob * (1 - one_hot)
        focal = (alpha * one_hot + (1 - alpha) * (1 - one_hot)) * pt.pow(gamma)
        loss = F.binary_cross_entropy_with_logits(pred, one_hot, reduction="none") * focal
        if weight is not None:
            loss = loss * weight.view(-1, 1)
        return {"mean": loss.mean, "sum": loss.sum}.get(reduction, lambda: loss)()

    def _unavailable(name: str) -> type:
        # Classes (not None) because mmengine/mmseg use some of them in isinstance() checks.
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError(f"mmcv.ops.{name} needs compiled mmcv; mmcv-lite (installed) has no compiled ops.")
        return type(name, (torch.nn.Module,), {"__init__": __init__})

    module.point_sample = point_sample
    module.sigmoid_focal_loss = sigmoid_focal_loss
    for name in ("CrissCrossAttention", "PSAMask", "DeformConv2d", "ModulatedDeformConv2d", "SyncBatchNorm"):
        setattr(module, name, _unavailable(name))
    return module


def install_mmcv_ops_standin() -> None:
    """Register the stand-in as `mmcv.ops` when the compiled extension is absent (mmcv-lite)."""
    # Why: `import mmseg.models` reaches `from mmcv.ops import point_sample` through mmseg.utils, and
    # mmcv-lite's real mmcv.ops fails on `mmcv._ext`. The UperNet/FCN path never calls those ops.
    if "mmcv.ops" in sys.modules or importlib.util.find_spec("mmcv._ext") is not None:
        return
    import mmcv

    standin = _mmcv_ops_standin()
    sys.modules["mmcv.ops"] = standin
    mmcv.ops = standin  # type: ignore[attr-defined]


def _load_own_checkpoint(filename: str, map_location: Any) -> Any:
    """mmengine loader for `probes-own://PATH`: our own run's checkpoint, unpickled in full."""
    # Why: torch>=2.6 defaults to weights_only=True, which rejects the numpy/message-hub objects mmengine
    # pickles into its own checkpoints (mmengine issue #1655). Only paths we wrote carry this prefix, so
    # full unpickling is never applied to a file from elsewhere.
    path = Path(filename[len(OWN_CHECKPOINT_PREFIX):])
    return torch.load(path, map_location=map_location, weights_only=False)


def register_own_checkpoint_loader() -> None:
    """Teach mmengine's CheckpointLoader the `probes-own://` scheme (idempotent)."""
    from mmengine.runner import CheckpointLoader

    CheckpointLoader.register_scheme(OWN_CHECKPOINT_PREFIX, _load_own_checkpoint, force=True)


def optim_wrapper_type(requested: str, device: str) -> str:
    """The optim wrapper type to use on `device`: AmpOptimWrapper becomes OptimWrapper off CUDA."""
    # Why: mmengine's AmpOptimWrapper asserts a CUDA/NPU/MLU device and fails on CPU. The configs default
    # to OptimWrapper anyway: the recipe runs the backbone in bf16 (autocast inside our backbone) and the
    # heads in fp32, which whole-model AMP would not respect; AMP stays available on CUDA by override.
    if requested == "AmpOptimWrapper" and device != "cuda":
        return "OptimWrapper"
    return requested


# Third-party warnings that say nothing to a user of this suite (silenced at import, where they are raised):
# the deformable-attention op mmcv-lite lacks (no model here uses it), mmseg 1.x deprecations of calls
# mmseg itself makes, and the visualisation hook that is configured off.
_NOISE = ("Fail to import ``MultiScaleDeformableAttention``", "``build_loss`` would be deprecated",
          "Default ``avg_non_ignore`` is False", "The draw is False", "`reduce_zero_label` will be deprecated",
          "torch.distributed.nn.functional.all_reduce is deprecated")


def silence_third_party_warnings() -> None:
    """Ignore the known, harmless warnings of mmcv-lite / mmseg / torch listed in `_NOISE` (idempotent)."""
    import re
    import warnings

    for message in _NOISE:
        warnings.filterwarnings("ignore", message=re.escape(message))


def import_mmseg() -> None:
    """Import mmseg with the stand-in in place and register our modules in its registries."""
    silence_third_party_warnings()
    install_mmcv_ops_standin()
    import mmseg.models  # noqa: F401  (populates MODELS with UPerHead, FCNHead, ...)
    import mmseg.datasets  # noqa: F401
    import mmseg.evaluation  # noqa: F401
    import mmseg.engine  # noqa: F401
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    register_own_checkpoint_loader()
    register_cpu_ddp_wrapper()
    register_fsdp_strategy()
    from probes.batchnorm import register_global_bn

    register_global_bn()
    # Why explicit registration: Config objects built from dicts ignore `custom_imports` (docs/segmentation.md,
    # "Known breakages").
    from probes.segmentation.registry import register_modules

    register_modules()


def init_cpu_process_group(launcher: str) -> None:
    """Start a gloo process group for a CPU run under torchrun/srun before mmengine tries to."""
    # Why: mmengine's init_dist always calls torch.cuda.set_device(local_rank), which fails on a machine
    # without CUDA. mmengine skips its own init when a process group already exists.
    import os

    import torch.distributed as dist

    if launcher == "none" or dist.is_initialized():
        return
    if launcher == "slurm":
        os.environ.setdefault("RANK", os.environ["SLURM_PROCID"])
        os.environ.setdefault("WORLD_SIZE", os.environ["SLURM_NTASKS"])
        os.environ.setdefault("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0"))
        os.environ.setdefault("MASTER_PORT", "29500")
        if "MASTER_ADDR" not in os.environ:
            import subprocess

            nodes = os.environ["SLURM_NODELIST"]
            os.environ["MASTER_ADDR"] = subprocess.getoutput(f"scontrol show hostname {nodes} | head -n1")
    dist.init_process_group(backend="gloo")


def register_cpu_ddp_wrapper() -> None:
    """Register `CPUDistributedDataParallel` in mmengine's MODEL_WRAPPERS (idempotent)."""
    # Why: mmengine always passes device_ids=[LOCAL_RANK] to DDP, which torch rejects for a CPU module;
    # multi-process CPU runs (and the CPU test of the torchrun path) need DDP without device_ids.
    from mmengine.model import MMDistributedDataParallel
    from mmengine.registry import MODEL_WRAPPERS

    if MODEL_WRAPPERS.get("CPUDistributedDataParallel") is not None:
        return

    class CPUDistributedDataParallel(MMDistributedDataParallel):
        """MMDistributedDataParallel for CPU modules: drops the GPU `device_ids` mmengine adds."""

        def __init__(self, module, device_ids=None, **kwargs):
            super().__init__(module=module, device_ids=None, **kwargs)

    MODEL_WRAPPERS.register_module(module=CPUDistributedDataParallel)


def encoder_block_policy(module: torch.nn.Module, recurse: bool, nonwrapped_numel: int, **_: object) -> bool:
    """FSDP auto-wrap policy: one unit per encoder block (marked `fsdp_unit` by ProbeEncoder), nothing else.

    Why not size-based: mmseg's segmentor calls `decode_head.loss(...)` and `predict(...)`, not the head's
    `forward`, so a head wrapped as its own FSDP unit is never unsharded and its convs see flat shards
    (`weight should have at least three dimensions` at the released 1,536 channels). Heads and neck stay
    in the root unit, which the runner's forward unshards; the blocks, 95% of a 6B model, are sharded.
    """
    return True if recurse else bool(getattr(module, "fsdp_unit", False))


def register_fsdp_strategy() -> None:
    """Register `ProbeFSDPStrategy`: mmengine's FSDPStrategy with resume working on torch 2.x (idempotent)."""
    # Why: mmengine 0.10.7 calls FSDP.optim_state_dict_to_load(state_dict, model, optimizer), the argument
    # order of torch 1.x; torch 2.x takes (model, optim, optim_state_dict), so every FSDP resume fails.
    from mmengine._strategy import FSDPStrategy
    from mmengine.registry import STRATEGIES
    from torch.distributed.fsdp import FullyShardedDataParallel

    if STRATEGIES.get("ProbeFSDPStrategy") is not None:
        return
    from mmengine.registry import FUNCTIONS

    FUNCTIONS.register_module(name="probe_encoder_block_policy", module=encoder_block_policy)

    class ProbeFSDPStrategy(FSDPStrategy):
        """FSDPStrategy whose optimizer-state loading uses torch 2.x's keyword arguments."""

        def load_optim_state_dict(self, state_dict: dict) -> None:
            """Load a (full or sharded) optimizer state saved by this strategy."""
            optim_state = FullyShardedDataParallel.optim_state_dict_to_load(
                model=self.model, optim=self.optim_wrapper.optimizer, optim_state_dict=state_dict)
            self.optim_wrapper.load_state_dict(optim_state)

    STRATEGIES.register_module(module=ProbeFSDPStrategy)
