"""Every shipped config, fully resolved, against the transcription of the official recipes in docs/recipes.md."""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from probes.encoders.versions import VERSIONS

DOC = Path(__file__).resolve().parents[1] / "docs" / "recipes.md"
FOLDERS = {"InternViT-6B-224px": "intern_vit_6b", "InternViT-6B-448px-V1-0": "intern_vit_6b_448px_v1_0",
           "InternViT-6B-448px-V1-2": "intern_vit_6b_448px_v1_2", "InternViT-6B-448px-V1-5": "intern_vit_6b_448px_v1_5",
           "InternViT-6B-448px-V2_5": "intern_vit_6b_448px_v2_5"}
GROUPS = {"all": list(VERSIONS), "6B": list(FOLDERS), "6B-224px": ["InternViT-6B-224px"],
          "6B-448": [v for v in FOLDERS if "448" in v], "300M": [v for v in VERSIONS if "300M" in v]}
DATASETS = {"ADE20K": "ade20k", "COCO-Stuff": "coco-stuff"}
DATASET_GROUPS = {"all": list(DATASETS), "ADE20K": ["ADE20K"], "COCO-Stuff": ["COCO-Stuff"]}
MODES = ("linear", "head", "full")


def _section(title: str) -> list[list[str]]:
    """The rows of the section's recipe table: the first table whose header has a `config key` column."""
    text = DOC.read_text().split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    tables: list[list[str]] = [[]]
    for line in text.splitlines():   # a table ends at the first line that is not a table row
        if line.startswith("|"):
            tables[-1].append(line)
        elif tables[-1]:
            tables.append([])
    table = next(t for t in tables if t and "config key" in t[0])
    rows = [line.strip().strip("|").split("|") for line in table]
    return [[cell.strip() for cell in row] for row in rows[1:] if not set(row[0].strip()) <= {"-"}]


def _value(cell: str) -> Any:
    return ast.literal_eval(cell.strip("`"))


def _legend(letter: str) -> str:
    return re.search(rf"\*\*{letter}\*\* = `([^`]+)`", DOC.read_text()).group(1)


def _select(cell: str, choices: dict[str, list[str]] | list[str]) -> list[str]:
    out: list[str] = []
    for part in cell.split("+"):
        out += choices[part] if isinstance(choices, dict) else (list(choices) if part == "all" else [part])
    return out


def _lookup(cfg: dict, key: str) -> Any:
    """A dotted key, `name[i]` list items, or `train:`/`test:` pipeline transforms by type."""
    if ":" in key:
        where, rest = key.split(":", 1)
        transform, field = rest.split(".", 1)
        loader = "train_dataloader" if where == "train" else "test_dataloader"
        matches = [t for t in cfg[loader]["dataset"]["pipeline"] if t["type"] == transform]
        assert len(matches) == 1, f"{loader} has {len(matches)} {transform} transforms"
        return matches[0].get(field)
    node: Any = cfg
    for part in key.split("."):
        name, _, index = part.partition("[")
        node = node.get(name) if isinstance(node, dict) else None
        if index:
            node = node[int(index.rstrip("]"))]
    return node


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
        return len(actual) == len(expected) and all(_same(a, e) for a, e in zip(actual, expected))
    if isinstance(expected, float) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
        return abs(actual - expected) <= 1e-9 * max(1.0, abs(expected))
    return actual == expected and type(actual) is type(expected) or (expected is None and actual is None)


def _segmentation_cases() -> Iterator[tuple[str, str, str]]:
    for version in VERSIONS:
        for dataset in DATASETS.values():
            for mode in MODES:
                yield version, dataset, mode


@pytest.fixture(scope="module")
def resolved_segmentation() -> dict[tuple[str, str, str], dict]:
    from probes.segmentation.mm_compat import import_mmseg
    from probes.segmentation.runner import SegmentOptions, plan_segmentation

    import_mmseg()
    return {case: plan_segmentation(SegmentOptions(encoder=case[0], dataset=case[1], mode=case[2]),
                                    check_data=False).cfg.to_dict()
            for case in _segmentation_cases()}


def test_every_shipped_segmentation_config_matches_the_recipe_table(resolved_segmentation) -> None:
    rows = _section("Segmentation")
    assert len(rows) > 80
    checked = {case: 0 for case in resolved_segmentation}
    for version_cell, dataset_cell, mode_cell, key, value, _source in rows:
        for version in _select(version_cell, GROUPS):
            for dataset in _select(dataset_cell, DATASET_GROUPS):
                for mode in _select(mode_cell, list(MODES)):
                    case = (version, DATASETS[dataset], mode)
                    cfg = resolved_segmentation[case]
                    actual = _lookup(cfg, key)
                    if value == "`L/H/F`":
                        folder = FOLDERS[version]
                        d = "ade20k" if dataset == "ADE20K" else "cocostuff164k"
                        template = _legend({"linear": "L", "head": "H", "full": "F"}[mode])
                        expected = ("OpenGVLab/InternVL-MMDetSeg mmsegmentation/configs/"
                                    + template.replace("{v}", folder).replace("{d}", d))
                    else:
                        expected = _value(value)
                    assert _same(actual, expected), f"{version} {dataset} {mode}: {key} is {actual!r}, recipe {expected!r}"
                    checked[case] += 1
    # Every one of the 30 official (and 12 our-choice 300M) configs is covered by many rows.
    assert min(checked.values()) >= 50, min(checked.items(), key=lambda kv: kv[1])


def test_the_recipe_table_names_a_source_for_every_row() -> None:
    for row in _section("Segmentation") + _section("Classification"):
        assert row[-1] and row[-1] != "-", row


def test_every_shipped_classification_config_matches_the_recipe_table() -> None:
    from probes.classification.config import load_config
    from probes.config_files import config_dir

    names = sorted(p.stem for p in config_dir("classification").glob("internvit_*.py"))
    resolved = {name: load_config(name).as_dict() for name in names}
    # The flat view the table's keys use: image_size, interpolation, crop_pct at the top, sections below.
    flat = {name: {**{k: v for k, v in d.items() if k != "image"}, "image_size": d["image"]["size"],
                   "interpolation": d["image"]["interpolation"], "crop_pct": d["image"]["crop_pct"]}
            for name, d in resolved.items()}
    rows = _section("Classification")
    checked = {name: 0 for name in names}
    for config_cell, key, value, _source in rows:
        for name in names if config_cell == "all" else [config_cell]:
            actual, expected = _lookup(flat[name], key), _value(value)
            assert _same(actual, expected), f"{name}: {key} is {actual!r}, recipe {expected!r}"
            checked[name] += 1
    assert min(checked.values()) >= 20 and len(names) == 8, checked
