"""Run a command in a fresh process and measure it together with every process it starts.

Peak memory is the largest sum, over the process and all its descendants, sampled every 0.2 s.
On Linux the sum is of PSS (proportional set size: a page shared by k processes counts 1/k in
each), so shared libraries such as torch's are not counted once per process; elsewhere it is
RSS, which overcounts them. A spike shorter than the sampling interval can be missed.
Needs psutil (in the ``flower`` extra).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Measured:
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    peak_mb: float


def run_measured(command: list[str], timeout: float, cwd: Path | None = None, env: dict | None = None) -> Measured:
    """Run ``command``; kill its whole tree and raise ``TimeoutError`` after ``timeout`` seconds."""
    import psutil

    # Output goes to files, not pipes: a chatty child must never block on a full pipe while we sample.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err, text=True)
        root, peak = psutil.Process(child.pid), 0
        while child.poll() is None:
            if time.perf_counter() - started > timeout:  # e.g. Ray can hang after a failed start-up
                for proc in [*_tree(root)[1:], root]:
                    with contextlib.suppress(psutil.Error):
                        proc.kill()
                child.wait()
                raise TimeoutError(f"{' '.join(command[:4])} ... did not finish within {timeout:g} s; stopped it.")
            peak = max(peak, sum(_memory(proc) for proc in _tree(root)))
            time.sleep(0.2)
        wall = time.perf_counter() - started
        out.seek(0), err.seek(0)
        return Measured(child.returncode, out.read(), err.read(), wall, peak / 1e6)


def _tree(root) -> list:
    import psutil

    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:  # the root has just exited
        return []


def _memory(proc) -> int:
    """PSS where the OS reports it (Linux), else RSS; 0 for a process that has ended meanwhile."""
    import psutil

    try:
        info = proc.memory_full_info() if sys.platform.startswith("linux") else proc.memory_info()
    except psutil.Error:
        return 0
    return getattr(info, "pss", info.rss)
