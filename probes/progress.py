"""Progress of long loops: a bar with ETA on a terminal, plain log lines in files (cluster logs).

Off a terminal, tqdm's carriage-return updates pile onto one physical line and bury the log; there a
loop instead logs one line at its end and one every `interval_s` seconds, in the layout mmengine's
logger uses for segmentation, so both tasks read alike:
`Epoch(train) [2/10][ 120/1251]  lr: 1.0000e-01  eta: 0:12:34  time: 0.512  img/s: 2000.0  loss: 6.9078`.
"""
from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from typing import Any, Iterable, Iterator, Optional

from tqdm import tqdm

log = logging.getLogger("probes.progress")


def on_terminal() -> bool:
    """Whether progress goes to an interactive terminal (tqdm writes to stderr)."""
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def terminal_bar(total: Optional[int], label: str, iterable: Optional[Iterable] = None, initial: int = 0,
                 leave: bool = False) -> tqdm:
    """The bar both tasks show on a terminal: count, rate and `elapsed<remaining` (the ETA)."""
    return tqdm(iterable, total=total, desc=label, initial=initial, dynamic_ncols=True, leave=leave,
                mininterval=1.0)


class Progress:
    """Wraps an iterable; `note(**values)` attaches the latest loss / lr to the next report."""

    def __init__(self, iterable: Iterable, total: Optional[int], label: str, enabled: bool = True,
                 interval_s: float = 60.0, images_per_step: Optional[int] = None,
                 terminal: Optional[bool] = None) -> None:
        self.iterable, self.total, self.label = iterable, total, label
        self.enabled = enabled
        self.interval_s = interval_s
        self.images_per_step = images_per_step
        self.terminal = on_terminal() if terminal is None else terminal
        self.values: dict[str, Any] = {}
        self.done = 0

    def note(self, **values: Any) -> None:
        """Values (loss, lr, ...) shown with the next report."""
        self.values.update(values)

    def __iter__(self) -> Iterator:
        if not self.enabled:
            yield from self.iterable
            return
        if self.terminal:
            yield from self._bar()
            return
        start = last = time.monotonic()
        for item in self.iterable:
            yield item
            self.done += 1
            now = time.monotonic()
            if now - last >= self.interval_s:
                log.info(self.line(now - start))
                last = now
        if self.done:
            log.info(self.line(time.monotonic() - start))

    def _bar(self) -> Iterator:
        bar = terminal_bar(self.total, self.label, self.iterable)
        for item in bar:
            yield item
            self.done += 1
            if self.values:
                bar.set_postfix({k: _fmt(v) for k, v in self.values.items()}, refresh=False)

    def line(self, elapsed: float) -> str:
        """One mmengine-style log line for the work done so far."""
        per_step = elapsed / max(self.done, 1)
        width = len(str(self.total)) if self.total else 1
        where = f"[{self.done:>{width}}/{self.total}]" if self.total else f"[{self.done}]"
        parts = [f"{self.label} {where}"]
        if "lr" in self.values:
            parts.append(f"lr: {self.values['lr']:.4e}")
        if self.total:
            parts.append(f"eta: {dt.timedelta(seconds=int(per_step * max(self.total - self.done, 0)))}")
        parts.append(f"time: {per_step:.3f}")
        if self.images_per_step:
            parts.append(f"img/s: {self.images_per_step / per_step if per_step else 0.0:.1f}")
        parts += [f"{k}: {_fmt(v)}" for k, v in self.values.items() if k != "lr"]
        return "  ".join(parts)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
