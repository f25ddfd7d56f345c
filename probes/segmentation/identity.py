"""What names a segmentation run: the values its id hashes and compares, and its row's protocol words."""
from __future__ import annotations

from typing import Any, Optional

from probes.encoders.resolved import ResolvedEncoder
from probes.errors import ConfigError
from probes.protocol import ProtocolWords, protocol_words
from probes.segmentation import precision
from probes.segmentation.config_checks import TEMPLATES
from probes.segmentation.run_settings import published_crop, recipe


def resolved_values(cfg: Any, encoder: ResolvedEncoder, root: str, device: str, mode: str, arrangement: str) -> dict:
    """Every resolved value of a run, with the encoder and data named by what they are, not their spelling.

    The `precision` key is planned as what it resolves to on `device` (`effective.precision` and `.weights`).
    """
    resolved = {k: v for k, v in cfg.to_dict().items() if k not in TEMPLATES and k != "precision"}
    resolved["custom_hooks"] = shaping_hooks(resolved.get("custom_hooks"))
    return {**resolved, "effective": {"precision": "fp32" if arrangement == "fp32" else "bf16",
                                      "weights": precision.WEIGHTS[arrangement][mode], "device": device},
            "identity": {"encoder": encoder.canonical, "weights": encoder.fingerprint or encoder.canonical,
                         "data": root}}


def shaping_hooks(hooks: Any) -> list:
    """The hooks that can change a run's numbers: all but those whose class says `shapes_numbers = False`.

    The suite's own hooks (checkpointing, evaluation history, the non-finite stop) only save, record or stop;
    a user's hook (EMAHook, ...) is taken to shape the numbers unless its class says otherwise.
    """
    from mmseg.registry import HOOKS

    from probes.segmentation.mm_compat import import_mmseg

    import_mmseg()
    kept = []
    for hook in hooks or []:
        kind = hook.get("type") if isinstance(hook, dict) else hook
        cls = HOOKS.get(kind) if isinstance(kind, str) else kind
        if cls is None:
            raise ConfigError(f"custom_hooks: no hook type {kind!r} is registered (a typo, or its module is "
                              "missing from custom_imports)")
        if getattr(cls, "shapes_numbers", True):
            kept.append(hook)
    return kept


def protocol_words_of(cfg: Any, changes: list[str], patch: int, crop: int, label: Optional[str] = None,
                      random_weights: bool = False) -> ProtocolWords:
    """The row's `protocol` and notes: which recipe was compared with, and every change from its plan."""
    source = cfg.get("recipe_source")
    facts = [f"released recipe {source}" if source else
             "InternViT-6B recipe applied by this suite (no recipe was released for this encoder)"]
    sizes = recipe()
    if patch != sizes["patch"] and crop == published_crop(patch):
        facts.append(f"crop {crop}: the recipe's {sizes['crop']} at the nearest multiple of patch {patch}")
    if cfg.optim_wrapper.get("paramwise_cfg", {}).get("exempt_embeddings_from_decay"):
        facts.append("exempt_embeddings_from_decay: the released runs decay the position embedding and class token")
    return protocol_words(changes, facts, label, random_weights=random_weights)
