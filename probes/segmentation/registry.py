"""Every module the suite adds to mmseg's registries, registered in one explicit call.

Configs name these classes by `type`; mmengine finds them only once they are registered. Registering here,
not with decorators at import, keeps importing a module free of side effects and lists in one place what a
config may name.
"""
from __future__ import annotations


def register_modules() -> None:
    """Register the suite's models, hooks, metric and optimizer wrappers in mmseg's registries (idempotent)."""
    from mmseg.registry import HOOKS, METRICS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS

    from probes.segmentation.hooks import EvaluationHistoryHook, NonFiniteLossHook, ProbeCheckpointHook
    from probes.segmentation.layer_decay import LayerDecayOptimWrapperConstructor
    from probes.segmentation.master_weights import ReleasedPrecisionOptimWrapper
    from probes.segmentation.metric import PerImageIoUMetric
    from probes.segmentation.models.backbone import ProbeEncoder
    from probes.segmentation.models.linear_head import LinearProbeHead
    from probes.segmentation.models.neck import ViTPyramidNeck
    from probes.segmentation.models.segmentor import ProbeEncoderDecoder

    for registry, modules in (
            (MODELS, (ProbeEncoder, ViTPyramidNeck, LinearProbeHead, ProbeEncoderDecoder)),
            (HOOKS, (ProbeCheckpointHook, EvaluationHistoryHook, NonFiniteLossHook)),
            (METRICS, (PerImageIoUMetric,)),
            (OPTIM_WRAPPER_CONSTRUCTORS, (LayerDecayOptimWrapperConstructor,)),
            (OPTIM_WRAPPERS, (ReleasedPrecisionOptimWrapper,))):
        for module in modules:
            if registry.get(module.__name__) is not module:
                registry.register_module(module=module, force=True)  # a reloaded module replaces its old class
