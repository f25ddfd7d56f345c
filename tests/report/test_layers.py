"""probes/report/ is built in layers, each importing only from the layers below it:

stats (pure statistics) <- evidence (result CSVs, side files, replicas, resamples) <- tables <- render
<- build / commands. `class_names` (names of classes from timm / mmseg metadata) is a leaf any layer may use.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPORT = Path(__file__).resolve().parents[2] / "probes" / "report"
# Lower number: lower layer. A module may import its own layer and those below it, never one above.
LAYERS = {"stats": 0, "evidence": 1, "tables": 2, "render": 3, "build": 4, "commands": 4}
TOP = max(LAYERS.values())
LEAVES = {"class_names"}  # import no report module themselves; any layer may use them


def layer_of(module: str) -> str:
    """The layer of a dotted module name under probes.report ('' for the package itself)."""
    parts = module.split(".")[2:]  # drop 'probes.report'
    return parts[0] if parts else ""


def report_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every probes.report module a file imports, lazy imports inside functions included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from probes.report import plots` names a module by its alias
            names = ([f"{node.module}.{alias.name}" for alias in node.names]
                     if node.module == "probes.report" else [node.module])
        else:
            continue
        found += [(node.lineno, name) for name in names if name.startswith("probes.report.")]
    return found


def upward_imports(root: Path) -> list[str]:
    """Every import under `root` that goes up a layer (or a leaf that imports the report): 'file:line -> module'."""
    wrong = []
    for path in sorted(root.rglob("*.py")):
        own = layer_of("probes.report." + ".".join(path.relative_to(root).with_suffix("").parts))
        for line, module in report_imports(path):
            target = layer_of(module)
            # a module of no known layer counts as the top one, so it is reported rather than let through
            if own in LEAVES or (target not in LEAVES and LAYERS.get(target, TOP) > LAYERS.get(own, TOP)):
                wrong.append(f"{path.relative_to(root)}:{line} -> {module}")
    return wrong


def test_every_report_module_sits_in_a_known_layer() -> None:
    names = {p.stem if p.is_file() else p.name for p in REPORT.iterdir()
             if p.name != "__init__.py" and (p.suffix == ".py" or (p / "__init__.py").exists())}
    assert names == set(LAYERS) | LEAVES, "a new module or package under probes/report/ needs its layer here"


def test_no_layer_imports_one_above_it() -> None:
    assert upward_imports(REPORT) == []


@pytest.mark.parametrize("low, high", [("stats/metrics.py", "probes.report.evidence.per_image"),
                                       ("evidence/replicas.py", "probes.report.tables.columns"),
                                       ("tables/runs.py", "probes.report.render.formats"),
                                       ("render/plots.py", "probes.report.build"),
                                       ("class_names.py", "probes.report.stats")])
def test_an_upward_import_is_caught(tmp_path: Path, low: str, high: str) -> None:
    for path in REPORT.rglob("*.py"):
        copy = tmp_path / path.relative_to(REPORT)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(path.read_text())
    planted = tmp_path / low
    # lazily, inside a function: the check reads every import, not just the module's header
    planted.write_text(planted.read_text() + f"\n\ndef _planted():\n    import {high}\n")
    assert upward_imports(tmp_path) == [f"{low}:{len(planted.read_text().splitlines())} -> {high}"]
