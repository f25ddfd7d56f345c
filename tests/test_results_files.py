"""Result CSV appends: concurrent writers all land, and no lock file is left behind."""
from __future__ import annotations

import multiprocessing
from pathlib import Path

from probes.results import append_rows, read_rows

COLUMNS = ("run_id", "value")


def _writer(path: str, name: str, n: int) -> None:
    for i in range(n):
        append_rows(Path(path), [{"run_id": name, "value": i}], COLUMNS)


def test_an_append_leaves_no_lock_file(tmp_path: Path) -> None:
    append_rows(tmp_path / "r.csv", [{"run_id": "a", "value": 1}], COLUMNS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]


def test_concurrent_appends_all_land_and_no_lock_is_left(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_writer, args=(str(path), f"w{k}", 8)) for k in range(3)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
        assert writer.exitcode == 0
    rows = read_rows(path)
    assert len(rows) == 24 and {r["run_id"] for r in rows} == {"w0", "w1", "w2"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]
