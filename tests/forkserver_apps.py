"""Stand-in app processes for tests/test_forkserver.py: the fork server runs these instead of Flower's."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

COUNTER = [0]  # a module global the server imported: a child that changes it must not change its sibling's


def report() -> None:
    """Print what the launcher handed over, then exit with the status given as the last argument."""
    COUNTER[0] += 1
    line = sys.stdin.readline().strip()
    print(f"args={sys.argv[1:]} cwd={os.getcwd()} env={os.environ.get('FT_PROBE')} stdin={line}", flush=True)
    print(f"pid={os.getpid()} ppid={os.getppid()} counter={COUNTER[0]}", flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    sys.exit(int(sys.argv[-1]))


def linger() -> None:
    """Write this process's pid to the file named by the first argument, then wait for a signal."""

    def on_term(signum, frame):
        print(f"got signal {signum}", flush=True)
        sys.exit(7)

    signal.signal(signal.SIGTERM, on_term)
    Path(sys.argv[1]).write_text(str(os.getpid()))
    while True:
        time.sleep(0.1)


def parent() -> None:
    """Start a child process (as a SuperExec starts ClientApps), write both pids, then wait."""
    import subprocess

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    Path(sys.argv[1]).write_text(f"{os.getpid()} {child.pid}")
    while True:
        time.sleep(0.1)
