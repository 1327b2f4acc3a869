"""A classroom on a small private network: the instructor and each "laptop" in its own network namespace.

Namespaces ``<tag>-hub`` (a bridge), ``<tag>-teacher`` (10.99.0.1, ``fedtutor classroom serve``),
``<tag>-s1`` / ``<tag>-s2`` (two students, ``fedtutor classroom join``), ``<tag>-stranger`` (a valid-looking
code with a key that was never enrolled) and ``<tag>-plain`` (a SuperNode without TLS). Addresses exist
only inside these namespaces: no traffic leaves the machine. Student 2's link is cut mid-run and the
rounds go on with student 1 (min clients 1). Every process is started under ``prlimit`` and ``timeout``,
and the test checks that none is left behind. The instructor's notebook view (``LiveView``) is tested
on its own at the end, without processes.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sysconfig
import time
from pathlib import Path

import pytest
from system import require

pytest.importorskip("flwr")
pytest.importorskip("cryptography")
psutil = pytest.importorskip("psutil")

DEADLINE_S = 170  # the whole federation; each process also dies by `timeout` after this
SUBNET = "10.99.0"
LIMIT = ["prlimit", "--nproc=300", "--as=6000000000", "--"]
SCRIPTS = Path(sysconfig.get_path("scripts"))


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=check)


class Network:
    """A bridge in a hub namespace, and one namespace per machine joined to it by a veth pair."""

    def __init__(self, tag: str) -> None:
        self.tag, self.names = tag, []
        self.hub = self.add_namespace("hub")
        ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        ip("-n", self.hub, "link", "set", "br0", "up")

    def add_namespace(self, role: str) -> str:
        name = f"{self.tag}-{role}"
        ip("netns", "add", name)
        self.names.append(name)
        ip("-n", name, "link", "set", "lo", "up")  # the SuperLink and SuperNodes also talk on loopback inside
        return name

    def add_machine(self, role: str, host: int) -> str:
        name = self.add_namespace(role)
        outside = f"{self.tag}{host}"  # <= 15 characters, as Linux requires
        ip("link", "add", outside, "type", "veth", "peer", "name", f"{outside}i")
        ip("link", "set", outside, "netns", self.hub)
        ip("link", "set", f"{outside}i", "netns", name)
        ip("-n", name, "link", "set", f"{outside}i", "name", "eth0")
        ip("-n", name, "addr", "add", f"{SUBNET}.{host}/24", "dev", "eth0")
        ip("-n", name, "link", "set", "eth0", "up")
        ip("-n", self.hub, "link", "set", outside, "master", "br0")
        ip("-n", self.hub, "link", "set", outside, "up")
        return name

    def cut(self, host: int) -> None:
        """The laptop's lid closes: its link goes down (packets are dropped, no goodbye)."""
        ip("-n", self.hub, "link", "set", f"{self.tag}{host}", "down")

    def delete(self) -> None:
        for name in reversed(self.names):
            ip("netns", "del", name, check=False)


def namespaces_work() -> tuple[bool, str]:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False, "network namespaces need root (run as root, as .ci/run does)"
    if shutil.which("ip") is None or shutil.which("prlimit") is None:
        return False, "the `ip` and `prlimit` commands (iproute2, util-linux) are not installed"
    probe = f"ftprobe{secrets.token_hex(3)}"
    made = ip("netns", "add", probe, check=False)
    ip("netns", "del", probe, check=False)
    return made.returncode == 0, f"cannot create a network namespace: {made.stderr.strip()[:120]}"


def strays(workdir: Path, since: float) -> list:
    """Live processes this test may have left: any naming the workdir, and its flower-* started since.

    Zombies are not counted: they have exited and wait only for the machine's init to reap them.
    """
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "create_time", "status"]):
        with _quiet():
            line = " ".join(proc.info["cmdline"] or [])
            if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if str(workdir) in line or (
                "flower-" in line
                and proc.info["create_time"] >= since - 1
                and str(workdir) in proc.environ().get("FLWR_HOME", "")
            ):
                found.append(proc)
    return found


class _quiet:  # noqa: N801 - used like contextlib.suppress
    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is not None and issubclass(kind, psutil.Error)


class Runner:
    """Starts commands in namespaces, each in its own process group, and stops them all."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir, self.env, self.procs = workdir, env, {}

    def start(self, name: str, namespace: str, args: list[str]) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        command = ["ip", "netns", "exec", namespace, *LIMIT, "timeout", str(DEADLINE_S), *args]
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.workdir, start_new_session=True
        )
        self.procs[name] = (proc, log)
        return proc

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def stop(self, name: str, grace: float = 20) -> None:
        proc, log = self.procs[name]
        if proc.poll() is None:
            with _quiet(), _suppress():
                os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the commands clean up after themselves
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with _suppress():
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


class _suppress:  # noqa: N801
    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is not None and issubclass(kind, ProcessLookupError | PermissionError)


def wait_for(condition, timeout: float, what: str, runner: Runner, deadline: float) -> None:
    end = min(time.monotonic() + timeout, deadline)
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; server log:\n{runner.log('serve')[-3000:]}")


def test_classroom_across_namespaces(tmp_path):
    ok, reason = namespaces_work()
    require(ok, reason)
    since = time.time()
    deadline = time.monotonic() + DEADLINE_S
    tag = f"ft{secrets.token_hex(3)}"
    workdir = tmp_path / f"classroom-{tag}"
    workdir.mkdir()
    env = dict(os.environ, CI="true", FEDTUTOR_QUICK="1", PYTHONUNBUFFERED="1", FLWR_TELEMETRY_ENABLED="0")
    env["PATH"] = f"{SCRIPTS}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    env["FLWR_HOME"] = str(workdir / "flwr-home")
    fedtutor = [str(SCRIPTS / "fedtutor"), "classroom"]
    net = Network(tag)
    runner = Runner(workdir, env)
    leftover: list = []
    try:
        teacher = net.add_machine("teacher", 1)
        s1, s2 = net.add_machine("s1", 11), net.add_machine("s2", 12)
        stranger, plain = net.add_machine("stranger", 13), net.add_machine("plain", 14)
        room = workdir / "room"
        server = f"{SUBNET}.1"
        runner.start(
            "serve",
            teacher,
            [*fedtutor, "serve", "--host", server, "--port", "9200", "--students", "2", "--rounds", "2"]
            + ["--min-clients", "1", "--straggler-timeout", "8", "--wait", "90", "--dir", str(room)],
        )
        wait_for(lambda: (room / "student-2.json").exists() and "codes.txt" in runner.log("serve"), 60,
                 "the server's join files", runner, deadline)  # fmt: skip
        for name, ns, k in (("s1", s1, 1), ("s2", s2, 2)):
            runner.start(name, ns, [*fedtutor, "join", "--join-file", str(room / f"student-{k}.json")]
                         + ["--dir", str(workdir / name)])  # fmt: skip
        wait_for(lambda: "round 1/2" in runner.log("serve"), 120, "round 1", runner, deadline)
        assert "connected: 2/2 students [1, 2]" in runner.log("serve")
        assert "contributed [1, 2]" in runner.log("serve").split("round 1/2")[1].splitlines()[0]

        # a stranger: the right server and CA, but a key the instructor never enrolled
        from fedtutor.course import certs

        code = (room / "codes.txt").read_text().split("--code ")[1].split()[0]
        number, _, fp = code.split(".")
        fake = certs.student_code(int(number), certs.make_student_key()[0], (room / "ca.pem").read_bytes())
        runner.start("stranger", stranger, [*fedtutor, "join", f"{server}:9200", "--code", fake]
                     + ["--dir", str(workdir / "stranger")])  # fmt: skip
        # a SuperNode without TLS
        runner.start("plain", plain, ["flower-supernode", "--insecure", "--superlink", f"{server}:9200"]
                     + ["--node-config", "partition-id=0 num-partitions=2", "--port", "9300"])  # fmt: skip
        net.cut(12)  # student 2 closes the lid while round 2 runs
        wait_for(lambda: runner.procs["stranger"][0].poll() is not None, 90, "the stranger's refusal", runner,
                 deadline)  # fmt: skip
        assert runner.procs["stranger"][0].returncode == 1
        assert "refused: the server does not know this key" in runner.log("stranger")

        wait_for(lambda: "done; every process stopped" in runner.log("serve"), 150, "all rounds", runner, deadline)
        log = runner.log("serve")
        rounds = [line for line in log.splitlines() if line.startswith("round ")]
        assert [line.split(":")[0] for line in rounds] == ["round 1/2", "round 2/2"]
        assert "contributed [1]" in rounds[-1]  # student 2 is gone; the run went on with student 1
        accuracy = [float(line.split("accuracy ")[1].split("%")[0]) for line in rounds]
        assert accuracy[-1] > 50, accuracy  # the rounds really trained, with or without the strangers
        assert "no TLS / bad handshake" in rounds[-1]  # the plaintext SuperNode was refused ...
        assert "key not enrolled" in rounds[-1]  # ... and so was the stranger
        assert "SuperNode ID:" not in runner.log("plain")
        assert runner.procs["serve"][0].wait(timeout=30) == 0
    finally:
        try:
            runner.stop_all()
            for _ in range(60):  # processes stopped by their parents need a moment to go
                if not (leftover := strays(workdir, since)):
                    break
                time.sleep(0.5)
            for proc in leftover:
                with _quiet():
                    proc.kill()
        finally:
            net.delete()
    assert not leftover, f"processes left behind: {[p.info['cmdline'] for p in leftover]}"
    remaining = ip("netns", "list").stdout
    assert tag not in remaining


def test_live_view_shows_rounds_students_and_refusals_without_a_notebook():
    """LiveView outside Jupyter: one line per round; its rows and table come from the records and the gateway."""
    import types

    import matplotlib

    matplotlib.use("Agg")
    from fedtutor.course import classroom

    stats = classroom.GatewayStats()
    stats.students[1] = classroom.Seen(last=time.monotonic(), up=2_000_000, down=1_900_000)
    stats.students[2] = classroom.Seen(last=time.monotonic() - 60, up=900_000, down=800_000)  # gone a minute ago
    stats.refuse("key not enrolled")
    lines: list[str] = []
    room = types.SimpleNamespace(
        config=types.SimpleNamespace(clients=3, rounds=2), gateway=types.SimpleNamespace(stats=stats), echo=lines.append
    )
    room.describe = lambda record: classroom.Classroom.describe(room, record)
    view = classroom.LiveView(room)
    base = {"bytes_down": 1_600_000, "refused": {"key not enrolled": 1}, "connected": [1, 2]}
    view.update({**base, "round": 1, "test_acc": 0.88, "students": [1, 2], "dropped": [], "lost": 0,
                 "bytes_up": 1_600_000})  # fmt: skip
    view.update({**base, "round": 2, "test_acc": 0.9, "students": [1], "dropped": [1], "lost": 1,
                 "bytes_up": 800_000, "connected": [1]})  # fmt: skip
    assert len(lines) == 2 and "round 2/2: accuracy 90.00%, contributed [1], lost [2]" in lines[1]
    assert "1 key not enrolled" in lines[1]
    rows = view.students()
    assert [(r["student"], r["connected"], r["rounds"]) for r in rows] == [
        (1, True, [1, 2]),
        (2, False, [1]),
        (3, False, []),
    ]
    assert rows[0]["up"] == 2_000_000 and rows[2]["up"] == 0
    table = view.html()
    assert table.count("<tr><td>") == 2 + 3  # two rounds, three students
    assert "<td>[2]</td>" in table and "away" in table
    fig = view.figure()
    accuracy, traffic = fig.axes
    assert list(accuracy.lines[0].get_ydata()) == [88.0, 90.0]
    assert [round(p.get_height(), 2) for p in traffic.patches] == [1.6, 1.6, 1.6, 0.8]
