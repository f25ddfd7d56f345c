"""The words a result row uses to say which protocol produced it (shared by every task)."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence

from probes.results import MODIFIED_PROTOCOL, RANDOM_WEIGHTS_PROTOCOL, STANDARD_PROTOCOL

# What does not shape a number, for both tasks, in one place. Every other key of a resolved plan shapes the
# numbers by default (so a new key can never be silently `published`); these are left out of a run's
# identity and are never a departure from the published recipe. Patterns are fnmatch over dotted keys.
NOT_NUMBER_SHAPING = (
    # classification: where results go and how progress is shown
    "runtime.out", "runtime.resume", "runtime.overwrite", "runtime.progress", "runtime.log_interval_s",
    "runtime.protocol_label",   # words only: it replaces the row's protocol word
    "runtime.device",           # what it changes is planned as `effective.precision` and `effective.device`
    "data.workers",             # loader processes
    "data.crop_on",             # where Pillow's resize runs: the same pixels (tests/classification/test_device_crops.py)
    "data.allow_subset",        # permits partial sets; the rows of such a run say subset=True
    "data.on_corrupt",          # what is skipped is counted in the rows (n_skipped)
    "train.eval_batch_size",    # heads evaluate in eval mode: each image's logits do not depend on its batch
    "cache.dir",                # where the cache lives; whether a run is cached is `effective.cached`
    # segmentation: mmengine's loading, logging and checkpointing cadence, and the run folder
    "*num_workers", "*persistent_workers", "*pin_memory", "default_hooks.*", "log_*", "visualizer.*",
    "vis_backends.*", "env_cfg.*", "work_dir", "launcher", "resume", "load_from", "custom_imports.*",
    "model.backbone.source", "model.backbone.revision",   # the weights are identified by their fingerprint
    "*.data_root",              # the data is identified by its resolved path (`data.root`)
    # sharding engines compute the recipe's update (tests/segmentation/test_distributed.py: first loss equal)
    "strategy.*", "model_wrapper_cfg.*", "runner_type",
    # where the released update's masters live (tests/segmentation/test_partition.py: the same weights bit for bit)
    "optim_wrapper.partition",
)
# Shapes which rows exist or on what (part of the run's identity) but is no departure from the recipe:
# where the data is, which weights, which probes and grid heads are trained beside the published head.
IDENTITY_ONLY = (
    "encoder.source", "encoder.weights", "encoder.revision", "encoder.version",
    "data.root", "data.paths", "data.paths.*", "data.val_labels", "data.test_sets", "data.test_sets.*",
    "probe.probes", "probe.probes.*", "probe.lrs", "probe.lrs.*", "probe.layers", "probe.layers.*",
    "train.seeds",   # replicas trained beside each head; replica 0 is the head a 1-seed run trains
    "effective.device", "identity.*",
)


def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys for every leaf of a nested dict / list (`a.b.0.c`); an empty container is one leaf."""
    if isinstance(tree, Mapping) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(tree, (list, tuple)) and tree and any(isinstance(v, (Mapping, list, tuple)) for v in tree):
        out = {}
        for i, value in enumerate(tree):
            out.update(flatten(value, f"{prefix}{i}."))
        return out
    return {prefix[:-1]: list(tree) if isinstance(tree, tuple) else tree}


def number_shaping(values: Mapping[str, Any]) -> dict[str, Any]:
    """The flattened values that shape a run's numbers (its identity): everything not listed as not shaping."""
    return {k: v for k, v in flatten(values).items() if not _matches(k, NOT_NUMBER_SHAPING)}


def recipe_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """The number-shaping values a published recipe fixes (identity-only keys left out)."""
    return {k: v for k, v in number_shaping(values).items() if not _matches(k, IDENTITY_ONLY)}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(b)))
        except (TypeError, ValueError):
            return False
    return a == b


def _text(value: Any) -> str:
    return "—" if value is _MISSING else repr(value)


_MISSING = object()


def recipe_changes(ours: Mapping[str, Any], published: Mapping[str, Any]) -> list[str]:
    """Every recipe value of `ours` that differs from the published plan's, as `key=ours (published: theirs)`."""
    a, b = recipe_values(ours), recipe_values(published)
    changes = []
    for key in sorted(set(a) | set(b)):
        mine, theirs = a.get(key, _MISSING), b.get(key, _MISSING)
        if mine is _MISSING or theirs is _MISSING or not _same(mine, theirs):
            changes.append(f"{key}={_text(mine)} (published: {_text(theirs)})")
    return changes


@dataclass(frozen=True)
class ProtocolWords:
    """A row's `protocol` (one word) and `protocol_notes` (every departure and every fact worth saying)."""

    protocol: str
    notes: str

    def as_row(self) -> dict[str, str]:
        """The two result-row columns."""
        return {"protocol": self.protocol, "protocol_notes": self.notes}


def protocol_words(changes: Sequence[str], facts: Sequence[str] = (), label: Optional[str] = None,
                   word: Optional[str] = None, random_weights: bool = False) -> ProtocolWords:
    """`published` when nothing changed, else `modified` (or `word`, e.g. `cached`, `lr-grid`).

    `changes` are departures from the published recipe, `facts` what a reader should know anyway (which
    recipe, held-out split ...). Seeded random weights are `random-weights` whatever the recipe: such a row is
    never the published one. A `label` (e.g. `demo`) replaces the word and says what it would have been.
    """
    protocol = RANDOM_WEIGHTS_PROTOCOL if random_weights else (
        word or (MODIFIED_PROTOCOL if changes else STANDARD_PROTOCOL))
    if random_weights:
        facts = ["seeded random weights, not a published checkpoint", *facts]
    notes = list(facts) + list(changes)
    if label:
        notes.insert(0, f"{label} run ({protocol} recipe otherwise)")
        protocol = label
    return ProtocolWords(protocol, "; ".join(notes))
