"""Plan each run of a campaign with the code the run itself uses, then cost it and write its entry.

The `probes ...` arguments are parsed by the real parser and planned by `plan_classify` / `plan_segmentation`
(what `probes classify` / `probes segment` call), so the run id in plan.json is the one the run will write,
or is left out (with the reason) when the weights or the data are not there to identify the run.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

from probes.campaign import cost as costs
from probes.campaign.launch import Resources, command_line, probes_argv
from probes.campaign.matrix import RunSpec
from probes.errors import ProbeError

DATA_FLAGS = {"ImageNet": "--data-imagenet", "ADE20K": "--data-ade20k", "COCO-Stuff": "--data-coco-stuff"}


@dataclass
class Planned:
    """A run's plan as the run makes it (None if not even the architecture could be described), and its id."""

    plan: Any
    run_id: Optional[str]
    note: str          # why there is no run id ('' when there is)


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """Planning reads the Hugging Face cache only: a hub id not downloaded yet has no run id, and no waiting."""
    before = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = before


def plan_argv(argv: List[str], check_data: bool = True) -> Any:
    """The plan `probes <argv>` makes before it runs (its arguments parsed by the real parser)."""
    from probes.cli import build_parser

    args = build_parser().parse_args(argv)
    if args.command == "classify":
        from probes.classification.commands import overrides_from_args
        from probes.classification.plan import plan_from_options

        return plan_from_options(args.config, overrides_from_args(args))
    from probes.segmentation.commands import options_from_args
    from probes.segmentation.datasets import register_transforms
    from probes.segmentation.mm_compat import import_mmseg
    from probes.segmentation.runner import plan_segmentation

    import_mmseg()
    register_transforms()
    opts = options_from_args(args)
    return plan_segmentation(opts if check_data else replace(opts, data=None), check_data=check_data)


def _swap(argv: List[str], flag: str, value: Optional[str]) -> List[str]:
    out, skip = [], False
    for i, word in enumerate(argv):
        if skip:
            skip = False
            continue
        if word == flag:
            skip = True
            if value is not None:
                out += [flag, value]
            continue
        out.append(word)
    return out


def resolve_run(argv: List[str], version: str, has_data: bool) -> Planned:
    """Plan a run as it will run; when the weights or data are missing, plan its architecture (no run id)."""
    with _offline():
        try:
            plan = plan_argv(argv, check_data=has_data)   # resolves the encoder first: one that is not there fails
        except ProbeError as exc:
            reason = str(exc).splitlines()[0]
            try:   # the cost needs the architecture only: the published version's, data unchecked
                fallback = _swap(_swap(argv, "--encoder", version), "--data", None)
                return Planned(plan_argv(fallback, check_data=False), None, reason)
            except ProbeError:
                return Planned(None, None, reason)
    if not has_data:
        return Planned(plan, None, "no data folder given (the run id names the data)")
    if not plan.encoder.fingerprint:
        return Planned(plan, None, f"weights of {plan.encoder.canonical} not found to fingerprint")
    return Planned(plan, plan.run_id, "")


def _classify_images(plan: Any, has_data: bool) -> tuple[int, int, str]:
    """(train images, evaluation images) of a run: the full sets the run insists on, or counted if it allows less."""
    from probes.classification.datasets import FULL_SIZES

    cfg = plan.cfg
    sets = [s for s in cfg.data.test_sets if s != "IN-ReaL" or "IN-1K" not in cfg.data.test_sets]
    sets = ["IN-1K" if s == "IN-ReaL" else s for s in sets]       # ReaL scores the val images IN-1K passes
    heldout = cfg.data.heldout_per_class * cfg.probe.num_classes
    if has_data and (cfg.data.allow_subset or cfg.data.train_per_class):
        from probes.classification.runner import load_data

        data = load_data(cfg.data, cfg.train.seed)
        train = len(data.train.files) + len(data.heldout.files)
        return train, len(data.heldout.files) + sum(len(t.files) for t in data.tests), "images counted on disk"
    train = FULL_SIZES["train"].images
    return train, heldout + sum(FULL_SIZES[s].images for s in sets), "full set sizes"


def _segment_val_images(plan: Any) -> int:
    if plan.subset and plan.data_root:
        from probes.segmentation.datasets import check_dataset

        return check_dataset(plan.dataset, Path(plan.data_root))[plan.dataset.splits[1]]
    return plan.dataset.full_sizes[1]


def run_cost(planned: Planned, spec: RunSpec, res: Resources, strategy: str, has_data: bool) -> costs.Cost:
    """The cost of one planned run."""
    plan = planned.plan
    if spec.task == "classify":
        train, evaluated, counted = _classify_images(plan, has_data and planned.run_id is not None)
        cost = costs.classify_cost(plan, train, evaluated, res.world)
        cost.notes.append(counted)
        return cost
    return costs.segment_cost(plan, _segment_val_images(plan), res.world, strategy)


def _auto_strategy(spec: RunSpec, planned: Planned, res: Resources, throughput: costs.Throughput,
                   has_data: bool) -> str:
    """fsdp for a segmentation run on several GPUs whose unsharded estimate would not fit one GPU, else none."""
    if spec.task != "segment" or planned.plan is None or res.world == 1 or res.gpus == 0:
        return "none"
    unsharded = run_cost(planned, spec, res, "none", has_data)
    return "fsdp" if unsharded.peak_memory_gib > throughput.memory_gib else "none"


def plan_entry(spec: RunSpec, out: Path, data: Dict[str, Optional[str]], res: Resources,
               throughput_of: Callable[[int], costs.Throughput]) -> Dict[str, Any]:
    """One plan.json entry: what runs, where, the commands, its estimated cost and (when knowable) its run id.

    `throughput_of(width)`: the GPU throughput to divide this encoder's FLOPs by.
    """
    root = data.get(spec.dataset)
    has_data = bool(root)
    given = str(dict(spec.flags).get("--strategy") or "none")   # a matrix may name the strategy
    argv = probes_argv(spec, out, root, res, given)
    planned = resolve_run(argv, spec.version, has_data)
    width = planned.plan.encoder.info.embed_dim if planned.plan is not None else 0
    throughput = throughput_of(width)
    strategy = given if given != "none" else _auto_strategy(spec, planned, res, throughput, has_data)
    if strategy != given:
        argv = probes_argv(spec, out, root, res, strategy)
        if planned.run_id is not None:   # the run id is computed from the arguments the run gets
            planned = resolve_run(argv, spec.version, has_data)
    entry: Dict[str, Any] = {
        "key": spec.key, "task": spec.task, "table": spec.table, "encoder": spec.encoder,
        "encoder_version": spec.version, "label": _label(spec, planned), "dataset": spec.dataset,
        "mode": spec.mode, "probes": None, "config": _config_name(spec, planned), "strategy": strategy,
        "gpus": res.gpus, "nodes": res.nodes, "argv": argv, "command": command_line(argv, res),
        "resume_command": command_line(probes_argv(spec, out, root, res, strategy, resume=True), res),
        "run_id": planned.run_id, "run_id_note": planned.note, "jobs": []}
    if not has_data:
        entry["needs"] = DATA_FLAGS[spec.dataset]
    if planned.plan is None:
        entry.update(gpu_hours=None, peak_memory_gib=None, flops=None, cost_notes=[planned.note])
        return entry
    if spec.task == "classify":
        entry["probes"] = list(planned.plan.cfg.probe.probes)
    cost = run_cost(planned, spec, res, strategy, has_data)
    entry.update(flops=cost.total_flops, flops_by_part=cost.flops,
                 gpu_hours=round(cost.gpu_hours(throughput), 2) if res.gpus else None,
                 cost_basis=throughput.basis if res.gpus else "CPU run: no GPU-hours",
                 peak_memory_gib=round(cost.peak_memory_gib, 1),
                 memory_by_part_gib={k: round(v / costs.GIB, 2) for k, v in cost.memory.items()},
                 cost_notes=cost.notes + ([f"does not fit one {throughput.device} ({throughput.memory_gib:g} GiB)"]
                                          if res.gpus and cost.peak_memory_gib > throughput.memory_gib else []))
    return entry


def _label(spec: RunSpec, planned: Planned) -> str:
    """The encoder as the report labels it (' @SIZE' for a classify run away from the version's own size)."""
    from probes.encoders.versions import VERSIONS

    # As the report's tables name an encoder (probes.report.tables.runs.encoder_base): its version, or its folder.
    label = spec.version if spec.version != "custom" else Path(spec.encoder.rstrip("/")).name
    if spec.task == "classify" and planned.plan is not None:
        size = planned.plan.preprocessing.size
        if spec.version in VERSIONS and VERSIONS[spec.version].image_size != size:
            label += f" @{size}"
    return label


def _config_name(spec: RunSpec, planned: Planned) -> Optional[str]:
    if planned.plan is None:
        return spec.config
    if spec.task == "classify":
        return planned.plan.config_file
    from probes.config_files import config_dir

    path = Path(planned.plan.config_path)
    try:
        return str(path.resolve().relative_to(config_dir("segmentation").resolve()))
    except ValueError:
        return str(path)
