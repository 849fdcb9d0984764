"""A child process of the harness's own code that reads a participant's file (a prediction to split into a round's
halves, to resample for its interval): started with this harness on its path and nothing else of the caller's
environment, it caps its own memory and CPU first (no preexec_fn: the scheduler and the server are threaded), so
a crafted file costs that child, never the scheduler."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def run(module: str, job: dict, wall_seconds: float) -> subprocess.CompletedProcess | None:
    """`python -m MODULE JOB` (JSON), its output captured; None when it ran past WALL_SECONDS."""
    import harness  # the child imports this harness, wherever it is installed (a folder on PYTHONPATH, say)
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(harness.__file__).resolve().parents[1])}
    try:
        return subprocess.run([sys.executable, "-P", "-m", module, json.dumps(job)], capture_output=True, text=True,
                              timeout=wall_seconds, env=env)
    except subprocess.TimeoutExpired:
        return None


def cap(memory_bytes: int, cpu_seconds: int) -> None:
    """The child's first act: its address space and CPU time capped."""
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
