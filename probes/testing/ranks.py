"""Run a function on N forked CPU processes joined by a gloo group (tests of multi-process arithmetic)."""
from __future__ import annotations

import multiprocessing
import traceback
from pathlib import Path
from typing import Any, Callable

import torch


def _child(fn: Callable[..., Any], rank: int, world: int, folder: Path, args: tuple) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)   # two forked ranks on 2 cores; an inherited thread pool would oversubscribe them
    try:
        dist.init_process_group("gloo", init_method=f"file://{folder / 'store'}", rank=rank, world_size=world)
        result = fn(rank, world, *args)
        torch.save(result, folder / f"rank{rank}.pt")
        # No destroy_process_group: tearing gloo down while its threads still run aborted ~1 child in 4
        # (SIGABRT from a native thread); the child ends with os._exit (multiprocessing's fork), which needs none.
    except BaseException:
        (folder / f"rank{rank}.error").write_text(traceback.format_exc())
        raise


def run_ranks(fn: Callable[..., Any], world: int, folder: Path, *args: Any, timeout: float = 120) -> list[Any]:
    """`fn(rank, world, *args)` on `world` forked processes with a gloo group; each rank's return value."""
    # Fork, not spawn: a spawned rank re-imports torch and mmseg (seconds each); `fn` must be picklable only
    # for spawn, so a test may pass a local function.
    folder.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_child, args=(fn, rank, world, folder, args)) for rank in range(world)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout)
    for rank, proc in enumerate(procs):
        if proc.is_alive():
            proc.kill()
            raise TimeoutError(f"rank {rank} of {world} did not finish in {timeout} s")
        error = folder / f"rank{rank}.error"
        if error.is_file():
            raise RuntimeError(f"rank {rank} of {world} failed:\n{error.read_text()}")
        if proc.exitcode != 0:
            raise RuntimeError(f"rank {rank} of {world} exited with {proc.exitcode}")
    return [torch.load(folder / f"rank{rank}.pt", weights_only=False) for rank in range(world)]
