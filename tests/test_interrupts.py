"""The signal guard both tasks train under, and what the `probes` command says when a run is interrupted."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from probes import cli
from probes.interrupts import Interrupt, RunInterrupted, SignalGuard, resume_command


def test_sigterm_stops_like_ctrl_c_and_the_old_handler_comes_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupt) as stopped:
        with SignalGuard():
            os.kill(os.getpid(), signal.SIGTERM)
    assert stopped.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_deferred_signal_waits_and_a_second_one_stops_at_once() -> None:
    notes = []
    with SignalGuard(deferring=True, note=notes.append) as guard:
        os.kill(os.getpid(), signal.SIGINT)
        assert guard.pending == signal.SIGINT and "stopping after this step" in notes[0]
        with pytest.raises(Interrupt):
            os.kill(os.getpid(), signal.SIGINT)


def test_the_command_names_the_checkpoint_and_the_resume_command(monkeypatch, capsys, tmp_path: Path) -> None:
    saved = tmp_path / "iter_2.pth"

    def interrupted(args) -> int:
        raise RunInterrupted(signal.SIGTERM, saved, "iteration 2 of 4")

    monkeypatch.setattr("probes.segmentation.commands.run_segment", interrupted)
    argv = ["segment", "--encoder", "my vit", "--dataset", "ade20k", "--mode", "head", "--cfg-options", "a=1"]
    assert cli.main(argv) == 128 + signal.SIGTERM
    err = capsys.readouterr().err.splitlines()
    assert err == [f"probes segment: interrupted (SIGTERM); iteration 2 of 4 is saved in {saved}",
                   "probes segment: continue with: probes segment --encoder 'my vit' --dataset ade20k --mode head "
                   "--cfg-options a=1 --resume"]
    # The printed command parses with the real parser, --resume on (not swallowed by --cfg-options).
    assert cli.build_parser().parse_args(argv + ["--resume"]).resume
    assert resume_command("probes", [*argv, "--resume"]).count("--resume") == 1
