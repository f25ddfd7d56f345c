"""What `probes segment` prints: a progress bar on a terminal, mmengine's progress lines elsewhere; warnings.

mmengine's Runner logs its environment, the whole config and mmseg's per-class tables at INFO: hundreds of
lines a user rarely reads. They stay in the log file mmengine writes into the run folder. Off a terminal
(cluster logs) the console keeps one line per log interval (loss, lr, ETA), the validation summaries and
every warning; on a terminal a bar with ETA (as `probes classify` shows, `probes/progress.py`) replaces
the progress lines, and the validation summaries and warnings are written above it.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

from mmengine.hooks import Hook

from probes.progress import terminal_bar

PROGRESS = ("Iter(train)", "Iter(val)", "Iter(test)", "Epoch(")
# mmengine's own warnings about how mmseg 1.x calls it: nothing a user of this suite can or should change.
HARMLESS = ("The prefix is not set in metric class", '"FileClient" will be deprecated',
            '"HardDiskBackend" is the alias of "LocalBackend"')


class ProgressOnly(logging.Filter):
    """Pass warnings (but `HARMLESS`) and mmengine's progress lines; drop the rest (it is in the log file).

    With `bar`, the progress lines within a loop (they carry an `eta:`) are dropped too: the bar shows them.
    """

    def __init__(self, bar: bool = False) -> None:
        super().__init__()
        self.bar = bar

    def filter(self, record: logging.LogRecord) -> bool:
        """True for what the console shows."""
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return not message.startswith(HARMLESS)
        return message.startswith(PROGRESS) and not (self.bar and "eta: " in message)


class AboveTheBar(logging.StreamHandler):
    """A console handler that prints above a progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record with tqdm.write (which clears and redraws the bars)."""
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:  # logging's own contract: a failing handler reports, never raises
            self.handleError(record)


def quiet(runner_class: type, bar: bool = False) -> type:
    """`runner_class` whose logger shows only progress and warnings on the console (the file keeps all).

    Why a subclass: the Runner builds its logger and logs the environment and config inside __init__, so the
    console filter must be in place when `build_logger` returns. `bar`: a `ProgressBarHook` draws progress.
    """

    class QuietRunner(runner_class):  # type: ignore[misc, valid-type]
        def build_logger(self, *args: Any, **kwargs: Any):
            """mmengine's logger with the console filtered."""
            logger = super().build_logger(*args, **kwargs)
            for handler in list(logger.handlers):
                if type(handler) is not logging.StreamHandler:   # the file handler keeps everything
                    continue
                if bar:
                    console = AboveTheBar(handler.stream)
                    console.setLevel(handler.level)
                    console.setFormatter(handler.formatter)
                    for kept in handler.filters:
                        console.addFilter(kept)
                    logger.removeHandler(handler)
                    logger.addHandler(console)
                    handler = console
                handler.addFilter(ProgressOnly(bar))
            return logger

    QuietRunner.__name__ = QuietRunner.__qualname__ = f"Quiet{runner_class.__name__}"
    return QuietRunner


class ProgressBarHook(Hook):
    """A bar over the training iterations (loss and lr beside it) and one over each validation."""

    priority = "BELOW_NORMAL"
    shapes_numbers = False     # a run's identity and protocol words leave it out (identity.shaping_hooks)

    def __init__(self) -> None:
        self.train: Optional[Any] = None
        self.val: Optional[Any] = None

    def before_train(self, runner) -> None:
        """Open the training bar (a resumed run starts it at its iteration)."""
        self.train = terminal_bar(runner.max_iters, "Iter(train)", initial=runner.iter, leave=True)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """One iteration done: advance, show the loss and the learning rate."""
        if self.train is None:
            return
        values = {}
        if outputs and "loss" in outputs:
            loss = outputs["loss"]
            values["loss"] = f"{float(loss.detach() if hasattr(loss, 'detach') else loss):.4f}"
        lrs = [lr for group in runner.optim_wrapper.get_lr().values() for lr in group]
        if lrs:
            values["lr"] = f"{max(lrs):.3e}"
        self.train.set_postfix(values, refresh=False)
        self.train.update(1)

    def after_train(self, runner) -> None:
        """Close the training bar (its last state stays: iterations, time taken)."""
        if self.train is not None:
            self.train.close()
            self.train = None

    def close(self) -> None:
        """Close whatever bar is open (a run that stopped half-way)."""
        for bar in (self.val, self.train):
            if bar is not None:
                bar.close()
        self.train = self.val = None

    def before_val_epoch(self, runner) -> None:
        """Open a bar over the validation images."""
        self.val = terminal_bar(len(runner.val_dataloader), "Iter(val)")

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """One validation batch done."""
        if self.val is not None:
            self.val.update(1)

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        """Close the validation bar."""
        if self.val is not None:
            self.val.close()
            self.val = None
