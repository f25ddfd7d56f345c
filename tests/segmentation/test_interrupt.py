"""Ctrl-C / SIGTERM during `probes segment`: the last finished iteration is saved, `--resume` ends as uninterrupted."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from probes.interrupts import RunInterrupted
from probes.segmentation.mm_compat import import_mmseg

from .test_runs import tiny_run

import_mmseg()

import probes.testing.interrupt  # noqa: E402,F401  (registers SignalHook)

# Checkpoints only at the end, validations after iterations 2 and 3: an interrupt at 2 must save by itself.
SPARSE = {"default_hooks.checkpoint.interval": 3, "train_cfg.val_interval": 2}
NUMBERS = ("mIoU", "best_mIoU", "best_iter", "aAcc", "mAcc", "iters")


def _signal_at(where: str, signum: int) -> dict:
    return {"custom_hooks": [dict(type="SignalHook", at=2, signum=int(signum), where=where)]}


@pytest.fixture(scope="module")
def whole(tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    from .conftest import write_ade20k

    root = tmp_path_factory.mktemp("interrupt")
    data = write_ade20k(root / "data")
    out = root / "whole"
    return data, tiny_run(tiny_encoder, "ade20k", data, "head", out, iters=3, cfg_options=SPARSE), out


def _final_state(out: Path) -> dict:
    return torch.load(next(out.glob("*/iter_3.pth")), map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.parametrize("where, signum", [("step", signal.SIGTERM), ("validation", signal.SIGINT)])
def test_an_interrupted_run_saves_its_last_iteration_and_resumes_to_the_same_numbers(
        where: str, signum: int, whole, tiny_encoder: Path, tmp_path: Path) -> None:
    data, uninterrupted, whole_out = whole
    with pytest.raises(RunInterrupted) as stopped:
        tiny_run(tiny_encoder, "ade20k", data, "head", tmp_path, iters=3,
                 cfg_options={**SPARSE, **_signal_at(where, signum)})
    # Inside iteration 2 the signal waits for its end; in the validation after it, it stops at once.
    assert stopped.value.checkpoint.name == "iter_2.pth" and stopped.value.checkpoint.is_file()
    assert stopped.value.exit_code == 128 + signum and "iteration 2 of 3" in str(stopped.value)
    assert (stopped.value.checkpoint.parent / "last_checkpoint").read_text() == str(stopped.value.checkpoint)
    assert not (tmp_path / "segmentation.csv").exists()
    resumed = tiny_run(tiny_encoder, "ade20k", data, "head", tmp_path, iters=3, cfg_options=SPARSE, resume=True)
    assert {k: resumed[k] for k in NUMBERS} == {k: uninterrupted[k] for k in NUMBERS}
    a, b = _final_state(whole_out), _final_state(tmp_path)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_a_second_signal_during_a_save_leaves_the_previous_checkpoint_whole(
        whole, tiny_encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmengine.fileio.backends.local_backend import LocalBackend

    data = whole[0]
    put = LocalBackend.put

    def torn_put(self, obj: bytes, filepath) -> None:
        if "iter_2" in str(filepath):   # half of iteration 2's checkpoint is on disk when Ctrl-C comes again
            with open(filepath, "wb") as handle:
                handle.write(obj[: len(obj) // 2])
            os.kill(os.getpid(), signal.SIGINT)
        put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, "put", torn_put)
    # Checkpoints every iteration; the first Ctrl-C comes in iteration 2, the second while it is being saved.
    with pytest.raises(RunInterrupted) as stopped:
        tiny_run(tiny_encoder, "ade20k", data, "linear", tmp_path, iters=3,
                 cfg_options={"default_hooks.checkpoint.interval": 1, **_signal_at("step", signal.SIGINT)})
    work_dir = stopped.value.checkpoint.parent
    assert stopped.value.checkpoint.name == "iter_1.pth"
    assert sorted(p.name for p in work_dir.glob("*.pth*")) == ["iter_1.pth"]
    assert not [p for p in work_dir.iterdir() if p.name.startswith(".")]   # no partial file left
    assert (work_dir / "last_checkpoint").read_text() == str(stopped.value.checkpoint)
    assert torch.load(stopped.value.checkpoint, map_location="cpu", weights_only=False)["meta"]["iter"] == 1


def test_only_the_main_process_renames_the_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another rank on the same machine sees the main process's partial file: it must neither rename nor remove it."""
    from probes.segmentation import interrupts

    class Writer:
        def save_checkpoint(self, out_dir: str, filename: str, *args, **kwargs) -> None:
            if interrupts.is_main_process():   # as mmengine: only the main process writes
                Path(out_dir, filename).write_bytes(b"weights")

    runner = interrupts.atomic_saves(Writer)()
    partial = tmp_path / ".iter_2.pth.partial"
    partial.write_bytes(b"weights")          # rank 0 has written it and not renamed it yet
    monkeypatch.setattr(interrupts, "is_main_process", lambda: False)
    runner.save_checkpoint(str(tmp_path), "iter_2.pth")       # rank 1 passes the same hook
    assert partial.is_file() and not (tmp_path / "iter_2.pth").exists()
    monkeypatch.setattr(interrupts, "is_main_process", lambda: True)
    runner.save_checkpoint(str(tmp_path), "iter_2.pth")       # rank 0 goes on
    assert (tmp_path / "iter_2.pth").read_bytes() == b"weights" and not partial.exists()
