"""What `probes segment` prints: mmengine's progress lines and warnings; everything else goes to the run's log.

mmengine's Runner logs its environment, the whole config and mmseg's per-class tables at INFO: hundreds of
lines a user rarely reads. They stay in the log file mmengine writes into the run folder; the console keeps
one line per log interval (loss, lr, ETA), the validation summaries and every warning.
"""
from __future__ import annotations

import logging
from typing import Any

PROGRESS = ("Iter(train)", "Iter(val)", "Iter(test)", "Epoch(")
# mmengine's own warnings about how mmseg 1.x calls it: nothing a user of this suite can or should change.
HARMLESS = ("The prefix is not set in metric class", '"FileClient" will be deprecated',
            '"HardDiskBackend" is the alias of "LocalBackend"')


class ProgressOnly(logging.Filter):
    """Pass warnings (but `HARMLESS`) and mmengine's progress lines; drop the rest (it is in the log file)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """True for what the console shows."""
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return not message.startswith(HARMLESS)
        return message.startswith(PROGRESS)


def quiet(runner_class: type) -> type:
    """`runner_class` whose logger shows only progress and warnings on the console (the file keeps all).

    Why a subclass: the Runner builds its logger and logs the environment and config inside __init__, so the
    console filter must be in place when `build_logger` returns.
    """

    class QuietRunner(runner_class):  # type: ignore[misc, valid-type]
        def build_logger(self, *args: Any, **kwargs: Any):
            """mmengine's logger with the console filtered."""
            logger = super().build_logger(*args, **kwargs)
            for handler in logger.handlers:
                if type(handler) is logging.StreamHandler:   # the console; the file handler keeps everything
                    handler.addFilter(ProgressOnly())
            return logger

    QuietRunner.__name__ = QuietRunner.__qualname__ = f"Quiet{runner_class.__name__}"
    return QuietRunner
