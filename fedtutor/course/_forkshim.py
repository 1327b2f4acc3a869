"""Stands in for ``flwr-clientapp`` / ``flwr-serverapp``: asks fedtutor's fork server to run it.

Run as ``python -I -S _forkshim.py REAL_COMMAND ARGS...`` by the launchers that
``fedtutor.course.forkserver`` writes; the standard library only, so it starts in milliseconds.
The forked app process gets this process's arguments, environment, working folder and
stdin/stdout/stderr; this process passes it SIGTERM/SIGINT/SIGHUP and exits with its status.
If the fork server cannot be reached, it runs the real command instead (Flower's own behaviour).
"""

import contextlib
import json
import os
import signal
import socket
import sys
import time

READY_S = 120.0  # importing torch on a loaded 2-core machine can take a while


def server_alive(folder: str) -> bool:
    """The server's folder is there and the process whose pid it holds is alive."""
    try:
        with open(os.path.join(folder, "pid")) as f:
            os.kill(int(f.read()), 0)
    except (OSError, ValueError):
        return False
    return True


def main() -> int:
    real, args = sys.argv[1], sys.argv[2:]
    command = os.path.basename(real)
    try:
        path = os.environ["FEDTUTOR_FORKSERVER"]
        deadline = time.monotonic() + READY_S
        while not os.path.exists(path):  # the server is still importing torch
            if not server_alive(os.path.dirname(path)) or time.monotonic() > deadline:
                raise FileNotFoundError(f"no fork server at {path}")
            time.sleep(0.1)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        conn.connect(path)
        request = {"command": command, "args": args, "env": dict(os.environ), "cwd": os.getcwd()}
        socket.send_fds(conn, [json.dumps(request).encode()], [0, 1, 2])
        pid = json.loads(conn.recv(1 << 16))["pid"]
    except (OSError, KeyError, ValueError) as err:
        if not os.path.isabs(real):
            print(f"fedtutor: fork server unavailable ({err!r}) and {real} is not installed", file=sys.stderr)
            return 127
        print(f"fedtutor: fork server unavailable ({err!r}); running {real} itself", file=sys.stderr)
        os.execv(real, [real, *args])

    def forward(signum, frame):
        with contextlib.suppress(OSError):  # it has ended already
            os.kill(pid, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    answer = conn.recv(1 << 16)  # a forwarded signal does not interrupt this (PEP 475)
    return json.loads(answer)["code"] if answer else 1  # no answer: the app process was killed


if __name__ == "__main__":
    sys.exit(main())
