"""Every benchmark script runs: its smallest mode end to end, its last line with the keys RESULTS.md quotes.

A benchmark nothing runs rots (probe_sweep.py once crashed on a changed signature unnoticed). The
figures of a smoke run are meaningless; what is checked is that the script's code paths still work
and still print the summary line whose keys the README and RESULTS.md refer to.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"-?\d+(\.\d+)?"


def run_benchmark(script: str, *args: str, timeout: int = 300) -> str:
    """The last stdout line of ``benchmarks/<script> <args>``, run from this checkout."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.setdefault("OMP_NUM_THREADS", "1")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{script} {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    lines = done.stdout.strip().splitlines()
    assert lines, f"{script} printed nothing"
    return lines[-1]


def summary(line: str) -> dict:
    """``key=value key=value`` → dict; anything else in the line fails the test."""
    pairs = dict(item.split("=", 1) for item in line.split())
    assert " ".join(f"{k}={v}" for k, v in pairs.items()) == line, f"not a key=value line: {line!r}"
    return pairs


def test_probe_sweep_smoke():
    values = summary(run_benchmark("probe_sweep.py", "--smoke"))
    assert list(values) == ["sweep_cost_ratio", "cache_speedup", "cache_build_s", "break_even_epochs",
                            "masked_step_ratio"]
    for key in ("sweep_cost_ratio", "cache_speedup", "cache_build_s", "masked_step_ratio"):
        assert re.fullmatch(NUMBER, values[key]) and float(values[key]) > 0, values
    assert values["break_even_epochs"] == "never" or int(values["break_even_epochs"]) >= 1


def test_heads_step_smoke():
    values = summary(run_benchmark("heads_step.py", "--smoke"))
    assert list(values) == ["step_ms", "update_share", "foreach_over_fused"]
    assert all(re.fullmatch(NUMBER, v) and float(v) > 0 for v in values.values()), values
    assert float(values["update_share"]) < 1


def test_data_pipeline_smoke():
    values = summary(run_benchmark("data_pipeline.py", "--smoke", "--device", "cpu"))
    assert list(values) == ["pipeline_img_s_per_core", "ratio_vs_float_pipeline", "path"]
    assert float(values["pipeline_img_s_per_core"]) > 0 and float(values["ratio_vs_float_pipeline"]) > 0
    assert values["path"] == "worker"   # what 'auto' takes on a CPU: the headline is that path


def test_encoder_throughput_smoke():
    values = summary(run_benchmark("encoder_throughput.py", "--smoke"))
    assert list(values) == ["ratio_vs_timm", "ratio_vs_eager"]
    assert all(re.fullmatch(NUMBER, v) and float(v) > 0 for v in values.values()), values


def test_report_stats_smoke():
    values = summary(run_benchmark("report_stats.py", "--smoke"))
    assert list(values) == ["report_stats_seconds", "ratio_vs_numpy_loop"]
    assert all(re.fullmatch(NUMBER, v) for v in values.values()), values


@pytest.mark.slow
def test_segmentation_step_smoke():
    values = summary(run_benchmark("segmentation_step.py", "--smoke", timeout=600))
    assert list(values) == ["head_time_ratio", "head_memory_ratio", "linear_time_ratio", "linear_memory_ratio"]
    assert all(re.fullmatch(NUMBER, v) and float(v) > 0 for v in values.values()), values


@pytest.mark.slow
def test_precision_paths_smoke():
    values = summary(run_benchmark("precision_paths.py", "--smoke"))
    assert list(values) == ["released_first_loss_diff", "autocast_first_loss_diff", "released_update_diff",
                            "autocast_update_diff", "bf16_rounding_diff", "released_master_diff"]
    assert all(re.fullmatch(r"-?\d+(\.\d+)?(e[-+]\d+)?", v) for v in values.values()), values
    # The released path stores bf16 weights: its parameters differ from the fp32 run's by at least rounding.
    assert float(values["released_update_diff"]) > 0 and float(values["bf16_rounding_diff"]) > 0


@pytest.mark.slow
def test_gpu_check_runs_its_code_paths_on_cpu_at_toy_size(tmp_path):
    line = run_benchmark("gpu_check.py", "--device", "cpu", "--tiny", "--out", str(tmp_path), timeout=600)
    n = int(re.fullmatch(r"gpu_check ok figures=(\d+)", line).group(1))
    record = json.loads((tmp_path / "gpu_check.json").read_text())
    assert len(record["figures"]) == n and n >= 15 and record["tiny"] is True
    names = {f["name"] for f in record["figures"]}
    assert {"forward 300M", "forward 6B", "ours / timm throughput", "classify tiny, device vs CPU",
            "crop, device path device half", "JPEG decode + crop (data.decode='gpu')",
            "segmentation head peak memory", "segment tiny first loss, device vs CPU",
            "segment tiny mIoU, device vs CPU", "segment full FSDP step (1 process)"} <= names
    rows = (tmp_path / "gpu_check.md").read_text().splitlines()[2:]
    assert len(rows) == n and all("(--tiny: toy sizes)" in row for row in rows)


def test_every_benchmark_script_has_a_test_here():
    tested = set(re.findall(r'run_benchmark\("(\w+\.py)"', Path(__file__).read_text()))
    assert {p.name for p in (ROOT / "benchmarks").glob("*.py")} == tested


def test_call_path_smoke():
    values = summary(run_benchmark("call_path.py", "--smoke"))
    assert list(values) == ["classify_files", "classify_functions", "classify_returns"]
    files, functions, returns = (int(values[k]) for k in values)
    # A classify run enters the CLI, config, plan, encoder, data, training and results modules at least.
    assert 10 <= files <= functions and returns >= 0
