"""Atomic file writes: a reader sees the old file or the new one, never a torn one."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, IO, Iterator, Union

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed over ``path``.

    The temporary name is unique per process and call, so two writers of one folder (two runs, two
    ranks) never collide on it; on an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: PathLike, write: Callable[[IO], None], mode: str = "w", **open_kwargs) -> Path:
    """Open a temporary file beside ``path``, let ``write(handle)`` fill it, then rename it over ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **open_kwargs) as handle:
            write(handle)
    return Path(path)


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Replace ``path`` with ``text`` atomically."""
    return write_atomic(path, lambda handle: handle.write(text), encoding="utf-8")
