"""What `probes segment` prints off a terminal: progress lines, warnings and the row, not mmengine's dumps."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import TINY_OPTIONS


def test_a_short_run_prints_a_few_lines_and_keeps_the_rest_in_its_log(tiny_encoder: Path, ade20k: Path,
                                                                       tmp_path: Path) -> None:
    out = tmp_path / "out"
    options = [f"{k}={v}" for k, v in TINY_OPTIONS.items() if k != "default_hooks.logger.interval"]
    done = subprocess.run(
        [sys.executable, "-m", "probes.cli", "segment", "--encoder", str(tiny_encoder), "--dataset", "ade20k",
         "--data", str(ade20k), "--mode", "head", "--iters", "4", "--batch-size", "2", "--crop-size", "56",
         "--device", "cpu", "--workers", "0", "--out", str(out), "--allow-subset",
         "--cfg-options", *options, "default_hooks.logger.interval=2"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    # Two train progress lines (interval 2), one validation summary, the row; no environment, config or tables.
    assert len(lines) <= 8, "\n".join(lines)
    assert sum("Iter(train)" in line for line in lines) == 2 and any("Iter(val)" in line for line in lines)
    last = done.stdout.strip().splitlines()[-1]
    assert last.endswith("(full log there)") and " mIoU " in last
    assert not any("Warning" in line for line in lines), "\n".join(lines)
    log = next(out.glob("*/*/*.log")).read_text()   # mmengine's own log file, in the run folder
    assert "Config:" in log and "per class results" in log and "System environment" in log   # all kept, in the file
