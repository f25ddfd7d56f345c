"""`probes inspect` through the real console entry point."""
from __future__ import annotations

from probes.cli import main
from probes.testing.checkpoints import write_tiny_hf_encoder


def test_inspect_describes_and_times_a_forward(tmp_path, capsys):
    folder = write_tiny_hf_encoder(tmp_path / "enc", style="6b")
    assert main(["inspect", str(folder), "--image-size", "42", "70", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "4 blocks, width 48, 4 heads, patch 14" in out
    assert "(2, 3, 42, 70) -> (2, 16, 48)" in out
