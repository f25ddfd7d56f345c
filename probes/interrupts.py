"""Ctrl-C and SIGTERM during a run: leave with the last finished step checkpointed and say how to resume.

Both signals go through one handler while a run trains (`SignalGuard`). Where the training state may be
half updated (inside an optimizer step) the first signal is only noted and honoured at the next step
boundary; elsewhere it stops the run at once. A second signal always stops at once: whatever was being
saved then is written atomically (`probes/io.py`), so the previous checkpoint stays the one to resume.
docs/architecture.md ("Interrupts") says how each task uses it.
"""
from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Optional, Sequence

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupt(BaseException):
    """Raised by the guard's handler (a BaseException, as KeyboardInterrupt, so `except Exception` lets it by)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class RunInterrupted(Exception):
    """A run stopped by a signal; names the checkpoint it left (None: nothing to resume from)."""

    def __init__(self, signum: int, checkpoint: Optional[Path], kept: Optional[str] = None) -> None:
        self.signum, self.checkpoint = signum, checkpoint
        name = signal.Signals(signum).name
        if checkpoint is None:
            text = f"interrupted ({name}) before any checkpoint was saved: a new run starts from the beginning"
        else:
            text = f"interrupted ({name}); {kept or 'the last finished step'} is saved in {checkpoint}"
        super().__init__(text)

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process a signal ended."""
        return 128 + self.signum


def resume_command(prog: str, argv: Sequence[str]) -> str:
    """The command line that continues an interrupted run: the same one with `--resume`."""
    import shlex

    words = [prog, *argv]
    if "--resume" not in words:
        words.append("--resume")
    return shlex.join(words)


class SignalGuard:
    """While entered, SIGINT and SIGTERM raise `Interrupt`, or, while `deferring`, are noted in `pending`.

    `deferring` is set by the caller around code that must not stop half-way (a training step); the caller
    checks `pending` at the next safe point. A second signal raises at once whatever `deferring` says.
    Outside the main thread (signals cannot be handled there) the guard does nothing.
    """

    def __init__(self, deferring: bool = False, note: Callable[[str], None] | None = None) -> None:
        self.deferring = deferring
        self.pending: Optional[int] = None
        self.note = note or _note
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.deferring and self.pending is None:
            self.pending = signum
            self.note(f"{signal.Signals(signum).name}: stopping after this step and saving it "
                      "(again to leave at once, keeping the last saved checkpoint)")
            return
        raise Interrupt(signum)

    def __enter__(self) -> "SignalGuard":
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def _note(text: str) -> None:
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)   # above a progress bar, if one is drawn


def signal_of(exc: BaseException) -> int:
    """The signal behind an `Interrupt` or a plain KeyboardInterrupt (SIGINT)."""
    return exc.signum if isinstance(exc, Interrupt) else int(signal.SIGINT)
