"""A fork server for Flower's processes: torch is imported once per machine, not once per message.

Why: Flower 1.42's SuperExec starts a fresh ``flwr-clientapp`` (or ``flwr-serverapp``) process
for every message it handles, and each one imports torch: about 280 MB of private memory per
process (most of it the heap and the tables torch builds at import), so a two-client run on one
laptop weighed 2.3-3.1 GB. Forked from one process that has imported torch, Flower and fedtutor,
a process shares those pages copy-on-write and pays only for what it writes.
Measured in docs/benchmarks.md ("Flower's process tree").

How it works (Linux only; elsewhere Flower starts its own processes, as it always does):
- ``start`` launches ``python -m fedtutor.course.forkserver SOCKET`` (the *server*), which imports
  everything, then waits on a Unix socket in a folder only this user can open. In that folder
  are small launchers named like the commands it stands in for (``ENTRY_POINTS``: the apps,
  ``flwr``, whose ``flwr run`` imports the app to check it, and ``flower-superexec``), put first
  on the ``PATH`` of the Flower processes.
- When Flower runs ``flwr-clientapp ARGS``, the launcher (``_forkshim.py``: the standard library
  only, ~5 MB) sends its arguments, environment, working folder and stdin/stdout/stderr to the
  server. The server forks; the child takes them over and runs Flower's own ``flwr-clientapp``
  entry point, in a process named ``flwr-clientapp``. The launcher passes SIGTERM/SIGINT/SIGHUP
  on to it and exits with its status.
- Nothing outlives its owner: the child, and what it started, end when its launcher is gone
  (even by SIGKILL: the socket closes); the child ends when the server is gone (Linux's
  parent-death signal); the server carries the run's token and dies with the process that
  started it, like every Flower process.
- The learner's own app files are never imported by the server: each child imports them afresh,
  so an edit between two runs is always seen.
- The server imports while Flower starts; a launcher waits for its socket. If the server is gone
  or failed (its folder is removed then), the launcher runs Flower's real command instead.

Set ``FEDTUTOR_FORKSERVER=0`` to turn it off.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

SOCKET_ENV = "FEDTUTOR_FORKSERVER"
FOLDER_PREFIX = "fedtutor-fork-"  # the server's private folder, in the system's temporary folder
SHIM = Path(__file__).with_name("_forkshim.py")
# The commands the server runs, and the entry point behind each (Flower's console scripts). `flwr run`
# is one: it imports the app to check it, so on its own it weighs as much as an app process.
ENTRY_POINTS = {
    "flwr": "flwr.cli.app:app",
    "flower-superexec": "flwr.supercore.cli:flower_superexec",  # one per SuperNode, for the whole run
    "flwr-clientapp": "flwr.supernode.cli:flwr_clientapp",
    "flwr-serverapp": "flwr.superlink.cli:flwr_serverapp",
}
PRELOAD = ("torch", "fedtutor.flower", "fedtutor.federated", "fedtutor.models", "fedtutor.data")


def wanted() -> bool:
    """Use the fork server here? Linux (fork is safe with torch there) and not turned off."""
    return sys.platform.startswith("linux") and os.environ.get(SOCKET_ENV, "") != "0"


def start(
    folder: Path, env: dict[str, str], options: dict, entry_points: dict[str, str] = ENTRY_POINTS
) -> tuple[subprocess.Popen, dict[str, str]]:
    """Start a server for the Flower processes that will run with ``env``; its log goes to ``folder``.

    Returns at once, with the server process and the environment to start those processes with
    (the launchers first on the PATH): the server imports torch while Flower starts, and a
    launcher waits for it. ``options`` are the ``subprocess.Popen`` options of every Flower
    process (its session, its death with ours). ``entry_points``: the commands it stands in for
    (tests use their own).
    """
    private = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))  # mode 0700: nobody else can connect
    path = private / "s"  # short: a socket's path is limited to 107 bytes
    (private / "bin").mkdir()
    for command in entry_points:
        real = shutil.which(command, path=env.get("PATH")) or ""  # run instead when the server is gone
        _write_launcher(private / "bin" / command, real)
    log = folder / "forkserver.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "fedtutor.course.forkserver", str(path)]
            + ([] if entry_points is ENTRY_POINTS else [f"{k}={v}" for k, v in entry_points.items()]),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, **options,
        )  # fmt: skip
    (private / "pid").write_text(str(server.pid))  # a launcher waiting for the socket checks it is alive
    return server, use({SOCKET_ENV: str(path)}, env)


def use(server_env: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    """``env`` changed to use the fork server that ``server_env`` uses (processes on one machine can share one)."""
    path = Path(server_env[SOCKET_ENV])
    return dict(env, PATH=f"{path.parent / 'bin'}{os.pathsep}{env['PATH']}", **{SOCKET_ENV: str(path)})


def _write_launcher(path: Path, real: str) -> None:
    python, shim = shlex.quote(sys.executable), shlex.quote(str(SHIM))
    # -I -S: the launcher needs only the standard library, and starts in milliseconds.
    path.write_text(f'#!/bin/sh\nexec {python} -I -S {shim} {shlex.quote(real or path.name)} "$@"\n', encoding="utf-8")
    path.chmod(0o755)


def remove_socket(env: dict[str, str]) -> None:
    """Remove the server's private folder (the server does on SIGTERM; this covers a SIGKILL).

    Only a folder ``start`` made: the variable may come from the user's own environment."""
    folder = Path(env.get(SOCKET_ENV, "0")).parent
    if folder.name.startswith(FOLDER_PREFIX) and folder.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(folder, ignore_errors=True)


# ----------------------------------------------------------------------------- the server


def serve(path: Path, entry_points: dict[str, str]) -> None:
    """Import once, then fork one child per request until SIGTERM."""
    import gc
    import importlib

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:  # on any failure the folder goes, and waiting launchers run the real commands
        for module in PRELOAD if entry_points is ENTRY_POINTS else ():
            importlib.import_module(module)
        entries = {}
        for command, target in entry_points.items():
            module, _, function = target.partition(":")
            entries[command] = getattr(importlib.import_module(module), function)
        gc.collect()
        gc.freeze()  # the collector would otherwise touch, and so copy, every shared object in every child
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        staging = path.with_name("staging")
        listener.bind(str(staging))
        listener.listen(64)
        os.rename(staging, path)  # the socket appears only once it accepts: launchers wait for it
        while True:
            conn, _ = listener.accept()
            with conn:
                _fork_child(conn, listener, entries)
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


def _fork_child(conn: socket.socket, listener: socket.socket, entries: dict) -> None:
    peer_pid, peer_uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    if peer_uid != os.getuid():  # the folder is private already; this is the second lock
        print(f"refused: process {peer_pid} of user {peer_uid}", flush=True)
        return
    message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    try:
        request = json.loads(message)
        entry = entries[request["command"]]
        if len(fds) != 3:
            raise ValueError("stdin, stdout and stderr expected")
    except (ValueError, KeyError):
        for fd in fds:
            os.close(fd)
        return
    server = os.getpid()
    if child := os.fork():
        print(f"{request['command']}: process {child}, for launcher {peer_pid}", flush=True)  # the log
        for fd in fds:
            os.close(fd)
        return
    code = 1
    try:  # the child: become the app process the launcher stands for
        os.setsid()  # a process group of its own, so that its end can take what it started with it
        listener.close()
        _die_with(server)
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL if signum != signal.SIGINT else signal.default_int_handler)
        _name_process(request["command"])
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = [request["command"], *request["args"]]
        _end_with_launcher(conn)
        conn.send(json.dumps({"pid": os.getpid()}).encode())
        try:
            entry()
            code = 0
        except SystemExit as end:
            code = end.code if isinstance(end.code, int) else (0 if end.code is None else 1)
        except BaseException:  # noqa: BLE001 - reported like an uncaught exception, then the status
            import traceback

            traceback.print_exc()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(OSError):
            conn.send(json.dumps({"code": code}).encode())
    finally:
        os._exit(code)  # never return into the server's loop, never run the server's exit handlers


def _die_with(server: int) -> None:
    import ctypes

    PR_SET_PDEATHSIG = 1  # noqa: N806 - the name in <sys/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != server:  # the server died before the line above took effect
        os._exit(1)


def _name_process(name: str) -> None:
    """The name ps, top and psutil show (Linux's comm, 15 bytes): the command it stands for."""
    import ctypes

    PR_SET_NAME = 15  # noqa: N806 - the name in <sys/prctl.h>
    ctypes.CDLL(None).prctl(PR_SET_NAME, name.encode()[:15])


def _end_with_launcher(conn: socket.socket) -> None:
    """A thread that ends this process, and the processes it started, when the launcher's end of the
    socket closes (the launcher was killed: whoever killed it meant this process and its children)."""
    import threading

    def watch() -> None:
        with contextlib.suppress(OSError):
            while conn.recv(64):
                pass
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, daemon=True, name="launcher-watch").start()


if __name__ == "__main__":  # SOCKET [COMMAND=MODULE:FUNCTION ...]
    serve(Path(sys.argv[1]), dict(arg.split("=", 1) for arg in sys.argv[2:]) or ENTRY_POINTS)
