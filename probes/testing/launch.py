"""Run a `probes` subcommand under torchrun on CPU (tests of the multi-process paths)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Sequence


def free_port() -> int:
    """A TCP port nobody listens on now (a fixed one collides with a concurrent or lingering run)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun_probes(args: Sequence[str], cwd: Path, nproc: int = 2, timeout: int = 300) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node N -m probes.cli ARGS`, one thread per process."""
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nproc_per_node", str(nproc), "--master_port", str(free_port()), "-m", "probes.cli", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
