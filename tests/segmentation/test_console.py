"""What `probes segment` prints: off a terminal progress lines, on one a bar; warnings and the row, no dumps."""
from __future__ import annotations

import re
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
    assert not re.search(r"\d+/4 \[\d\d:\d\d<", done.stderr), done.stderr[-2000:]   # no bar off a terminal
    log = next(out.glob("*/*/*.log")).read_text()   # mmengine's own log file, in the run folder
    assert "Config:" in log and "per class results" in log and "System environment" in log   # all kept, in the file


def test_on_a_terminal_a_bar_with_eta_replaces_the_progress_lines(tiny_encoder: Path, ade20k: Path, tmp_path: Path,
                                                                   monkeypatch, capfd) -> None:
    import probes.progress

    from .test_runs import tiny_run

    # The run asks probes.progress.on_terminal, as classify does; here it answers yes.
    monkeypatch.setattr(probes.progress, "on_terminal", lambda: True)
    row = tiny_run(tiny_encoder, "ade20k", ade20k, "linear", tmp_path, iters=4)
    out, err = capfd.readouterr()
    assert row["iters"] == 4
    # tqdm's bar: count, then [elapsed<remaining (the ETA), rate]; the last state stays on the screen.
    assert re.search(r"Iter\(train\): 100%\|[^|]*\| 4/4 \[\d\d:\d\d<00:00, ", err), err[-2000:]
    assert re.search(r"Iter\(val\):.*\| [0-2]/2 \[", err), err[-2000:]
    lines = [line for line in out.splitlines() if line.strip()]
    assert not any("Iter(train) [" in line for line in lines), "\n".join(lines)   # the bar shows them
    assert any("Iter(val) [2/2]" in line and "mIoU" in line for line in lines), "\n".join(lines)   # the summary
