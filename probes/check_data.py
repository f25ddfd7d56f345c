"""`probes check-data`: read a data root as `probes classify` / `probes segment` would, and name every problem.

Nothing is trained and no model is loaded. The runs' own readers (probes/classification/datasets.py,
probes/segmentation/datasets.py) list the files and labels; a problem stops only the set it is in, so one
call names them all, each with the layout a run expects.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

from probes.errors import ConfigError, DatasetError

TASKS = ("imagenet", "ade20k", "coco-stuff")
# What a run reads for each set (under the data root, as the default data.paths name them).
LAYOUTS = {
    "train": "train/<wnid>/*.JPEG: the 1000 ImageNet-1K wnids (`probes classes IN-1K`)",
    "IN-1K": "val/<wnid>/*.JPEG, or a flat val/ILSVRC2012_val_*.JPEG with val.txt or LOC_val_solution.csv "
             "beside it (or data.val_labels)",
    "IN-ReaL": "real.json: 50,000 label lists, one per val image (absent: timm's bundled copy is used)",
    "IN-V2": "imagenetv2-matched-frequency-format-val/<0..999>/*.jpeg",
    "IN-A": "imagenet-a/<wnid>/*.jpg: 200 of the wnids (`probes classes IN-A`)",
    "IN-R": "imagenet-r/<wnid>/*.jpg: 200 of the wnids (`probes classes IN-R`)",
    "IN-Sketch": "sketch/<wnid>/*.JPEG: the 1000 wnids",
    "ade20k": "ADEChallengeData2016/{images,annotations}/{training,validation}/: ADE_*.jpg, each with its ADE_*.png",
    "coco-stuff": "coco_stuff164k/{images,annotations}/{train2017,val2017}/: <id>.jpg, each with its "
                  "<id>_labelTrainIds.png (written by `probes prepare coco-stuff ROOT`)",
}


@dataclass
class Finding:
    """What was found for one set or split, and why a run would refuse it ('' when it would not)."""

    name: str
    found: str = ""
    problem: str = ""
    expected: str = ""   # the layout a run reads, shown with a problem about the files' layout
    skipped: bool = False   # absent, and a run goes on without it

    @property
    def status(self) -> str:
        """'ok', 'problem' or 'skipped'."""
        return "problem" if self.problem else ("skipped" if self.skipped else "ok")


def _finding(name: str, read: Callable[[], Tuple[Any, str]], complete: Callable[[Any], Any]) -> Tuple[Any, Finding]:
    """Read a set (partial sets allowed), then apply the run's completeness rule to what was read."""
    try:
        image_set, found = read()
    except (DatasetError, ConfigError) as exc:
        return None, Finding(name, problem=str(exc), expected=LAYOUTS.get(name, ""))
    try:
        complete(image_set)
    except DatasetError as exc:
        return image_set, Finding(name, found, problem=str(exc))   # the message says the fix
    return image_set, Finding(name, found)


def _classes(image_set: Any) -> int:
    return len(set(image_set.targets))


def survey_imagenet(root: Path, allow_subset: bool, options: Optional[Mapping[str, Any]] = None) -> List[Finding]:
    """Every set `probes classify --data ROOT` reads, with the run's data settings (`options`: data.* keys)."""
    from probes.classification import datasets as ds
    from probes.classification.config import load_config

    data = load_config(None, {**(options or {}), "data.root": str(root), "data.allow_subset": allow_subset},
                       pick_published=False).data
    if not root.is_dir():
        raise DatasetError(f"data root {root} does not exist.")

    def where(name: str) -> Path:
        return ds.resolve_path(root, data.paths[name])

    def train_read() -> Tuple[Any, str]:
        image_set = ds.read_train(where("train"), True)
        return image_set, f"{len(image_set):,} images in {_classes(image_set)} classes ({image_set.root})"

    def train_complete(image_set: Any) -> None:
        ds.check_complete("train", image_set.root, len(image_set), _classes(image_set), allow_subset)
        ds.split_heldout(image_set, data.heldout_per_class, 0, None, data.heldout_max_fraction)

    _, train = _finding("train", train_read, train_complete)
    findings = [train]
    wanted = set(data.test_sets)
    if wanted & {"IN-1K", "IN-ReaL"}:
        findings += _val_and_real(ds, root, where("IN-1K"), data, allow_subset, wanted)
    readers = {"IN-V2": ds.read_v2, "IN-Sketch": ds.read_sketch,
               "IN-A": lambda r, a: ds.read_restricted("IN-A", r, a),
               "IN-R": lambda r, a: ds.read_restricted("IN-R", r, a)}
    for name in ("IN-V2", "IN-A", "IN-R", "IN-Sketch"):
        if name not in wanted:
            continue
        folder = where(name)
        if not folder.is_dir():
            findings.append(Finding(name, f"{folder} not found: a run skips {name}", skipped=True))
            continue

        def read(name: str = name, folder: Path = folder) -> Tuple[Any, str]:
            image_set = readers[name](folder, True)
            return image_set, f"{len(image_set):,} images in {_classes(image_set)} classes ({folder})"

        findings.append(_finding(name, read, lambda s, name=name: ds.check_complete(
            name, s.root, len(s), _classes(s), allow_subset))[1])
    return findings


def _val_and_real(ds: Any, root: Path, folder: Path, data: Any, allow_subset: bool, wanted: set) -> List[Finding]:
    """IN-1K and IN-ReaL: both scored on the val images (ReaL by file name)."""
    if not folder.is_dir():
        return [Finding(name, f"{folder} not found: a run skips {name}", skipped=True)
                for name in ("IN-1K", "IN-ReaL") if name in wanted]

    def read() -> Tuple[Any, str]:
        image_set = ds.read_val(folder, root, True, data.val_labels)
        labels = ds.val_label_source(folder, root, data.val_labels)
        return image_set, f"{len(image_set):,} images in {_classes(image_set)} classes (labels: {labels})"

    val, found = _finding("IN-1K", read, lambda s: ds.check_complete(
        "IN-1K", s.root, len(s), _classes(s), allow_subset))
    findings = [found] if "IN-1K" in wanted else []
    if "IN-ReaL" not in wanted:
        return findings
    if val is None:
        return findings + [Finding("IN-ReaL", problem="not checked: the val images could not be read (see IN-1K)")]
    path = ds.resolve_path(root, data.paths["IN-ReaL"]) if data.paths.get("IN-ReaL") else None
    source = str(path) if path is not None and path.is_file() else "timm's bundled copy"

    def real_read() -> Tuple[Any, str]:
        ds.attach_real(val, ds.load_real_labels(path), True)
        scored = val.n_scored("IN-ReaL")
        return val, f"{scored:,} of {len(val):,} val images have a ReaL label list ({source})"

    def real_complete(image_set: Any) -> None:
        classes = len({c for entry in image_set.real_labels for c in entry})
        ds.check_complete("IN-ReaL", image_set.root, image_set.n_scored("IN-ReaL"), classes, allow_subset)

    return findings + [_finding("IN-ReaL", real_read, real_complete)[1]]


def survey_segmentation(key: str, root: Path, allow_subset: bool) -> List[Finding]:
    """Both splits of ADE20K or COCO-Stuff as `probes segment --data ROOT` reads them."""
    from probes.segmentation.datasets import check_complete, check_split, dataset_spec, partial_splits, resolve_root

    spec = dataset_spec(key)
    folder = resolve_root(spec, root)
    findings, counts = [], {}
    for split, full in zip(spec.splits, spec.full_sizes):
        try:
            counts[split] = check_split(spec, folder, split)
        except DatasetError as exc:
            findings.append(Finding(split, problem=str(exc), expected=LAYOUTS[key]))
            continue
        findings.append(Finding(split, f"{counts[split]:,} images, each with its annotation "
                                       f"(the released split has {full:,}; {folder})"))
    try:
        check_complete(spec, folder, counts, allow_subset)
    except DatasetError as exc:
        findings.append(Finding("partial", "; ".join(partial_splits(spec, counts)), problem=str(exc)))
    return findings


def format_findings(task: str, root: Path, findings: Sequence[Finding]) -> Tuple[str, int]:
    """The printed report and the exit code (0 only when a run would accept the data)."""
    width = max(len(f.name) for f in findings)
    lines = [f"{task} data at {root}:"]
    lines += [f"  {f.name:<{width}}  {f.status:<7}  {f.found or '-'}" for f in findings]
    problems = [f for f in findings if f.problem]
    if not problems:
        lines.append("a run would accept this data")
        return "\n".join(lines), 0
    lines.append(f"{len(problems)} problem(s); a run would refuse this data:")
    for f in problems:
        lines.append(f"  {f.problem}" if f.problem.startswith(f.name) else f"  {f.name}: {f.problem}")
        if f.expected:
            lines.append(f"    expected: {f.expected}")
    return "\n".join(lines), 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `check-data` subcommand."""
    parser = sub.add_parser(
        "check-data", help="check a data root as a run would read it (no model, no training)",
        description="Read a data root with the readers `probes classify` (imagenet) and `probes segment` "
                    "(ade20k, coco-stuff) use, print what each set holds and every problem with its fix. "
                    "Exit 0 only when a run would accept the data.")
    parser.add_argument("task", choices=TASKS, help="which data: the ImageNet family, ADE20K or COCO-Stuff")
    parser.add_argument("root", type=Path, help="the folder passed to the run's --data")
    parser.add_argument("--allow-subset", action="store_true",
                        help="accept partial sets, as a run given --allow-subset does")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                        help="imagenet: the run's data.* settings, e.g. data.paths.IN-A=/elsewhere/imagenet-a "
                             "(default: none)")
    parser.set_defaults(func=run_check_data)


def run_check_data(args: argparse.Namespace) -> int:
    """Survey the data root, print the report, return 0 (accepted) or 1 (refused)."""
    from probes.config_files import parse_cfg_options

    root = Path(args.root).expanduser()
    if args.task == "imagenet":
        findings = survey_imagenet(root, args.allow_subset, parse_cfg_options(args.cfg_options))
    else:
        if args.cfg_options:
            raise ConfigError(f"--cfg-options applies to imagenet only (got {' '.join(args.cfg_options)})")
        findings = survey_segmentation(args.task, root, args.allow_subset)
    text, code = format_findings(args.task, root, findings)
    print(text)
    return code
