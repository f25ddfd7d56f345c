"""The image path of a classify run: files → uint8 crops in workers or on the device → normalised batches.

One public builder, :func:`build_pipeline` (as timm's ``create_transform`` is for timm): from what the
run's config decides (preprocessing, recipe, ``data.*``, the process's device) it returns the loaders and
the device-side step. The modules behind it, each with one job:
- :mod:`.image_paths` decides how images travel (worker crops, device crops, ``data.decode='gpu'``), timing
  worker against device crops for ``data.crop_on='auto'``;
- :mod:`.images` decodes and crops with Pillow in the workers; :mod:`.device_crops` and
  :mod:`.pil_resample` resize on the device exactly as Pillow would; :mod:`.gpu_decode` decodes on the GPU;
- :mod:`.device_batches` normalises on the device; :mod:`.loaders` builds the loaders (shared memory lent to
  their workers, :mod:`.batch_memory`) and mixes per group of images.
Nothing here imports :mod:`probes.classification.live`, which runs the backbone on these batches.
"""
from __future__ import annotations

from timm.data import Mixup
from torch.utils.data import DistributedSampler

from probes.classification.config import DataSpec, TrainRecipe
from probes.classification.datasets import ImageSet
from probes.classification.distributed import DistInfo
from probes.classification.pipeline.gpu_decode import decode_protocol_note
from probes.classification.pipeline.image_paths import crop_paths
from probes.classification.pipeline.loaders import GroupedMixup, ImagePipeline, data_loader
from probes.classification.pipeline.preprocessing import Preprocessing

__all__ = ["build_pipeline", "ImagePipeline", "Preprocessing", "GroupedMixup", "data_loader",
           "decode_protocol_note"]


def build_pipeline(train: ImageSet, pre: Preprocessing, recipe: TrainRecipe, data: DataSpec, num_classes: int,
                   dist: DistInfo, batch: int, eval_batch: int) -> ImagePipeline:
    """The loaders and device-side step for a run's images (`batch`, `eval_batch`: per process)."""
    # The one place choosing how images reach the device (see crop_paths).
    paths = crop_paths(pre, recipe, data, dist.device, sample=train)
    train_set = paths.train_set(train)
    sampler = DistributedSampler(train_set, num_replicas=dist.world, rank=dist.rank, shuffle=True, seed=recipe.seed)
    use_mix = recipe.mixup > 0 or recipe.cutmix > 0
    mixup = GroupedMixup(Mixup(mixup_alpha=recipe.mixup, cutmix_alpha=recipe.cutmix,
                               switch_prob=recipe.mixup_switch_prob, label_smoothing=recipe.smoothing,
                               num_classes=num_classes), recipe.mixup_group) if use_mix else None
    return ImagePipeline(paths, train_set, sampler, mixup, pre, data.workers, data.on_corrupt, dist,
                         batch, eval_batch)
