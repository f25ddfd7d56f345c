"""The same command under torchrun (2 CPU processes, gloo): data sharded, counts summed, one writer."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from probes.results import read_rows
from probes.testing.launch import torchrun_probes


def _torchrun(args, tmp_path: Path) -> subprocess.CompletedProcess:
    return torchrun_probes(["classify", *args], cwd=tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("cached", [False, True], ids=["live", "cached"])
def test_torchrun_two_processes_score_every_image_once(tiny_encoder, data_root, tmp_path, cached):
    out = tmp_path / "out"
    args = ["--encoder", str(tiny_encoder), "--data", str(data_root), "--config", "tiny_demo",
            "--out", str(out), "--cfg-options", "train.batch_size=4", "cache.batch_size=4", "probe.lrs=[0.5]"]
    if cached:
        args += ["--cache", str(tmp_path / "cache")]
    done = _torchrun(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_rows(out)
    probes = {"linear", "attention_pooling"} | ({"knn", "logreg"} if cached else set())
    heads = 2 * 2 + (2 if cached else 0)
    assert len(rows) == heads * 6  # written once, by rank 0
    assert {r["probe"] for r in rows} == probes
    n = {r["test_set"]: int(r["n_images"]) for r in rows}
    # 4 images per set split over 2 ranks, summed back: no image dropped or scored twice.
    assert n == {"IN-1K": 4, "IN-ReaL": 3, "IN-V2": 4, "IN-A": 4, "IN-R": 4, "IN-Sketch": 4}
