"""The fork server behind Flower's app processes (fedtutor.course.forkserver).

It promises: an app process is its launcher in every way Flower can see (arguments, environment,
working folder, streams, exit status, signals); it shares nothing it writes with its siblings;
it never outlives its launcher or the server; nobody else on the machine can ask it to run
anything; and without it the real command runs. Each test tries to break one of these.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from system import require

from fedtutor.course import forkserver, launcher

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is Linux-only")

psutil = pytest.importorskip("psutil")
TESTS = Path(__file__).resolve().parent
APPS = {
    "report": "forkserver_apps:report",
    "linger": "forkserver_apps:linger",
    "parent": "forkserver_apps:parent",
    "true": "forkserver_apps:report",
}


@pytest.fixture
def server(tmp_path):
    env = dict(os.environ, PYTHONPATH=f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", FT_PROBE="server")
    process, env = forkserver.start(tmp_path, env, launcher.child_options(), entry_points=APPS)
    deadline = time.monotonic() + 60
    while not Path(env[forkserver.SOCKET_ENV]).exists():  # these tests start from a listening server
        assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "forkserver.log").read_text()
        time.sleep(0.05)
    yield process, env
    process.kill()
    process.wait(timeout=10)
    forkserver.remove_socket(env)


def launch(env: dict, *args: str, **options) -> subprocess.Popen:
    """Start a launcher the way Flower's SuperExec does: by command name, found on the PATH."""
    return subprocess.Popen(list(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options)


def gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.05)
    return False


def wait_for_pid(path: Path) -> int:
    deadline = time.monotonic() + 30
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < deadline, "the app process never started"
        time.sleep(0.05)
    return int(path.read_text())


def test_the_app_process_gets_what_its_launcher_was_given(server, tmp_path):
    process, env = server
    work = tmp_path / "work"
    work.mkdir()
    run = launch(dict(env, FT_PROBE="launcher"), "report", "a b", "--flag", "3", cwd=work, stdin=subprocess.PIPE)
    out, err = run.communicate("from stdin\n", timeout=60)
    assert run.returncode == 3  # the app's exit status, passed on
    assert f"args=['a b', '--flag', '3'] cwd={work} env=launcher stdin=from stdin" in out
    assert "to stderr" in err
    pid, ppid = (int(n) for n in re.search(r"pid=(\d+) ppid=(\d+)", out).groups())
    assert ppid == process.pid and pid not in (process.pid, run.pid)  # forked by the server: a process of its own


def test_what_one_app_process_writes_no_other_sees(server):
    _, env = server
    outs = [launch(env, "report", "0", stdin=subprocess.DEVNULL).communicate(timeout=60)[0] for _ in range(3)]
    # each child incremented the module global it inherited: every one started from the server's 0
    assert all("counter=1" in out for out in outs), outs
    pids = {out.split("pid=")[1].split()[0] for out in outs}
    assert len(pids) == 3


def test_the_app_process_is_named_after_the_command(server, tmp_path):
    _, env = server
    run = launch(env, "linger", str(tmp_path / "pid"))
    try:
        pid = wait_for_pid(tmp_path / "pid")
        assert psutil.Process(pid).name() == "linger"  # what ps and psutil show, as for Flower's own process
    finally:
        run.kill()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_to_the_launcher_reaches_the_app(server, tmp_path, signum):
    _, env = server
    run = launch(env, "linger", str(tmp_path / "pid"))
    pid = wait_for_pid(tmp_path / "pid")
    run.send_signal(signum)
    out, _ = run.communicate(timeout=30)
    assert gone(pid, 10)
    if signum == signal.SIGTERM:  # the app's own handler ran, and its status came back
        assert "got signal 15" in out and run.returncode == 7
    else:  # default handling: the app ended, the launcher reports a failure
        assert run.returncode != 0


def test_an_app_never_outlives_its_launcher_killed_without_warning(server, tmp_path):
    """SIGKILL cannot be passed on: the app must notice that its launcher's socket closed."""
    _, env = server
    run = launch(env, "linger", str(tmp_path / "pid"))
    pid = wait_for_pid(tmp_path / "pid")
    run.kill()
    run.wait(timeout=10)
    assert gone(pid, 10), "the app process outlived its SIGKILLed launcher"


def test_what_an_app_started_ends_with_its_launcher(server, tmp_path):
    """A SuperExec starts ClientApps: killing the SuperNode's tree must take them too, as without the server."""
    _, env = server
    run = launch(env, "parent", str(tmp_path / "pids"))
    deadline = time.monotonic() + 30
    while not ((tmp_path / "pids").exists() and " " in (tmp_path / "pids").read_text()):
        assert time.monotonic() < deadline, "the app never started its child"
        time.sleep(0.05)
    app, child = (int(pid) for pid in (tmp_path / "pids").read_text().split())
    run.kill()
    run.wait(timeout=10)
    assert gone(app, 10) and gone(child, 10), "a process outlived the launcher that stood for its parent"


def test_an_app_never_outlives_the_server(server, tmp_path):
    process, env = server
    run = launch(env, "linger", str(tmp_path / "pid"))
    pid = wait_for_pid(tmp_path / "pid")
    process.kill()
    assert gone(pid, 10), "the app process outlived the fork server"
    run.communicate(timeout=30)
    assert run.returncode != 0


def test_the_socket_is_private_to_its_user(server):
    _, env = server
    folder = Path(env[forkserver.SOCKET_ENV]).parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert folder.stat().st_uid == os.getuid()


def knock_as_nobody(socket_path: Path, marker: Path) -> str:
    """From a child process running as the user nobody, ask the server to run ``linger``."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            conn.connect(str(socket_path))
            request = {"command": "linger", "args": [str(marker)], "env": {}, "cwd": "/"}
            socket.send_fds(conn, [json.dumps(request).encode()], [0, 1, 2])
            code = 10 if conn.recv(1 << 16) else 20
        except ConnectionError:  # the server closed the connection before the request was sent
            code = 20
        except PermissionError:
            code = 30
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return {10: "ran", 20: "refused by the server", 30: "refused by the folder"}[os.waitstatus_to_exitcode(status)]


@pytest.mark.parametrize("opened", [False, True], ids=["as-created", "folder-opened-up"])
def test_another_user_cannot_make_it_run_anything(server, tmp_path, opened):
    """The private folder is the first lock; the server checks who is at the other end of the socket."""
    require(os.geteuid() == 0, "switching to another user (nobody) needs root")
    _, env = server
    socket_path = Path(env[forkserver.SOCKET_ENV])
    if opened:
        socket_path.parent.chmod(0o755)
        socket_path.chmod(0o777)
    verdict = knock_as_nobody(socket_path, tmp_path / "ran")
    time.sleep(1)
    assert not (tmp_path / "ran").exists(), "the server ran an app for another user"
    assert verdict == ("refused by the server" if opened else "refused by the folder")


def test_without_the_server_the_real_command_runs(server):
    process, env = server
    process.kill()
    process.wait(timeout=10)
    run = launch(env, "true", "ignored")  # /usr/bin/true, found when the launcher was written
    _, err = run.communicate(timeout=60)
    assert run.returncode == 0
    assert "fork server unavailable" in err and "running /" in err


def test_only_the_server_s_own_folder_is_ever_removed(tmp_path):
    """The variable can come from the user's environment: clean-up must not delete what it names."""
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "s").write_text("a learner's file")
    forkserver.remove_socket({forkserver.SOCKET_ENV: str(mine / "s")})
    assert (mine / "s").read_text() == "a learner's file"


def test_a_launcher_started_before_the_server_is_ready_waits_for_it(tmp_path):
    """start() returns at once (the server imports while Flower starts): the first launcher must wait."""
    env = dict(os.environ, PYTHONPATH=f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    process, env = forkserver.start(tmp_path, env, launcher.child_options(), entry_points=APPS)
    try:
        run = launch(env, "report", "0", stdin=subprocess.DEVNULL)  # before the socket exists
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0 and "counter=1" in out, out + err
        assert f"ppid={process.pid}" in out  # forked by the server, not the real command
    finally:
        process.kill()
        process.wait(timeout=10)
        forkserver.remove_socket(env)


def test_a_server_that_fails_to_start_leaves_flower_s_own_commands(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    process, env = forkserver.start(tmp_path, env, launcher.child_options(), entry_points={"true": "no_such:app"})
    assert process.wait(timeout=60) != 0
    assert "No module named 'no_such'" in (tmp_path / "forkserver.log").read_text()  # the log says why
    # its folder is gone, launchers included: `true` on the PATH is the real one again
    assert not Path(env[forkserver.SOCKET_ENV]).parent.exists()
    run = launch(env, "true")
    assert run.wait(timeout=30) == 0


def test_a_launcher_does_not_wait_for_a_server_killed_while_starting(tmp_path):
    """SIGKILL leaves the folder (and the launchers) behind: they must see that the server is dead."""
    env = dict(os.environ, PYTHONPATH=f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    process, env = forkserver.start(tmp_path, env, launcher.child_options(), entry_points=APPS)
    try:
        process.kill()
        process.wait(timeout=10)
        started = time.monotonic()
        run = launch(env, "true")
        _, err = run.communicate(timeout=60)
        assert run.returncode == 0 and "running /" in err  # /usr/bin/true ran, and the launcher said why
        assert time.monotonic() - started < 10  # it did not wait for a server that is gone
    finally:
        forkserver.remove_socket(env)
