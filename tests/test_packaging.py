"""A plain (non-editable) install works: configs and published tables ship inside the wheel."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_runs_without_the_checkout(tmp_path: Path) -> None:
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    # The build backend from this environment (setuptools is a declared dependency of the seg extra).
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(ROOT)], check=True, capture_output=True, text=True)
    wheel = next(wheels.glob("internvit_probes-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, text=True)
    work = tmp_path / "elsewhere"   # not the checkout: nothing can come from it
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site))

    def probes(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "probes.cli", *args], cwd=work, env=env,
                              capture_output=True, text=True)

    where = subprocess.run([sys.executable, "-c", "import probes; print(probes.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site))
    printed = probes("classify", "--config", "internvit_6b_224px", "--print-config")
    assert printed.returncode == 0, printed.stderr
    assert "image_size=224" in printed.stdout.replace(" ", "") or "size=224" in printed.stdout.replace(" ", "")
    (work / "results").mkdir()
    report = probes("report", str(work / "results"), "--out", str(work / "report"))
    assert report.returncode == 0, report.stderr
    published = (work / "report" / "tables" / "published_table14.md").read_text()
    assert "InternViT-6B-448px-V2_5" in published or "V2.5" in published
