"""Peak memory of the whole process tree of a Flower run on one machine, against the 2 GB target.

Two workloads, each in a fresh Python process measured with every process it starts (summed PSS,
sampled every 0.2 s, as ``process_tree.py`` does; here also split by program at the peak):

(a) **classroom**: ``fedtutor.course.classroom.Classroom`` on 127.0.0.1 (SuperLink with TLS and
    SuperNode authentication, the gateway) and two local ``Student`` SuperNodes, 2 rounds of the
    2NN on MNIST-mini, as notebook 12 runs it;
(b) **notebook 11**: ``launcher.run_deployment`` with notebook 11's configuration (quick: 2
    clients, 2 rounds, the last client killed after round 1; ``--full``: 3 clients, 5 rounds,
    killed after round 2).

The baseline in the same run is a bare ``python -c "import torch"`` process (what any process of
the tree costs at least), so the ratios say how many such processes the tree weighs.

Deployment shapes of (b): ``per-message`` is Flower 1.42's own (each SuperNode's SuperExec starts a
fresh ``flwr-clientapp`` process for every message, and each imports torch: ~300 MB of private
memory with the CUDA wheel). ``--isolation process`` does not change that in 1.42: the SuperExec
then runs outside the SuperNode but still starts one ``flwr-clientapp`` per message, which handles
one task and exits. ``zygote`` (a prototype, here only) puts a ``flwr-clientapp`` shim first on the
PATH: it hands its arguments and stdin/stdout/stderr to a fork server that imported torch and
fedtutor once, and the forked ClientApp shares those pages copy-on-write.

Usage: python benchmarks/classroom_memory.py [--full] [--only classroom|notebook11] [--zygote]
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from process_tree import _memory, _tree  # benchmarks/process_tree.py, beside this script

REPO = Path(__file__).resolve().parent.parent
TARGET_MB = 2000.0

CLASSROOM = """
import tempfile
from pathlib import Path
from fedtutor.flower import DeploymentConfig
from fedtutor.course import classroom, launcher

folder = Path(tempfile.mkdtemp(prefix="classroom-memory-"))
config = DeploymentConfig(clients=2, rounds=2, min_clients=1, straggler_timeout=60.0, seed=0)
port = launcher.free_port_block(2, start=9260)
with classroom.Classroom(config, "127.0.0.1", port, folder / "room", echo=lambda line: None) as room:
    joins = room.prepare()
    room.start()
    students = []
    try:
        for path in joins:
            number, key, fingerprint, ca, _ = classroom.student_from(path, None)
            info = classroom.preflight("127.0.0.1", port, fingerprint, ca)
            student = classroom.Student("127.0.0.1", port, number, 2, key, ca, folder / f"s{number}")
            student.start()
            students.append(student)
        assert all(s.wait_connected(120) == "connected" for s in students)
        room.wait_for_students(60)
        room.submit()
        records = list(room.rounds(timeout=600))
    finally:
        for student in students:
            student.stop()
print("rounds", len(records), "accuracy", records[-1]["test_acc"])
"""

NOTEBOOK11 = """
import sys
from fedtutor.flower import DeploymentConfig
from fedtutor.course import launcher

full = sys.argv[1] == "full"
clients, rounds, kill_after = (3, 5, 2) if full else (2, 2, 1)
config = DeploymentConfig(
    clients=clients, rounds=rounds, model="2nn", partition="iid", epochs=1, batch_size=10, lr=0.05, seed=0,
    min_clients=2 if full else 1, straggler_timeout=15.0 if full else 5.0,
    port=launcher.free_port_block(clients + 1, start=9160),
)
history = launcher.run_deployment(config, kill_client_after_round=kill_after, echo=lambda line: None)
print("rounds", len(history), "accuracy", history.records[-1]["test_acc"])
"""


ZYGOTE_SERVER = """
import gc, json, os, signal, socket, sys
import torch  # noqa: F401 - imported once, shared copy-on-write by every forked ClientApp
import fedtutor.flower
fedtutor.flower.build_client_app()
from flwr.supernode.cli.flwr_clientapp import flwr_clientapp
gc.collect()
gc.freeze()  # keep the collector from touching (and so copying) the shared objects
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forked ClientApps are reaped automatically
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(sys.argv[1])
server.listen(16)
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    request = json.loads(message)
    if os.fork() == 0:
        code = 1
        try:
            server.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for target, fd in zip((0, 1, 2), fds):
                os.dup2(fd, target)
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
            conn.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\\n")
            sys.argv = request["argv"]
            try:
                flwr_clientapp()
                code = 0
            except SystemExit as end:
                code = end.code if isinstance(end.code, int) else int(end.code is not None)
            sys.stdout.flush()
            sys.stderr.flush()
            conn.sendall(json.dumps({"code": code}).encode() + b"\\n")
        finally:
            os._exit(code)
    for fd in fds:
        os.close(fd)
    conn.close()
"""

SHIM = """#!{python} -S
import json, os, signal, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(os.environ["FEDTUTOR_ZYGOTE"])
request = {{"argv": sys.argv, "env": dict(os.environ), "cwd": os.getcwd()}}
socket.send_fds(s, [json.dumps(request).encode()], [0, 1, 2])
answers = s.makefile("rb")
pid = json.loads(answers.readline())["pid"]
def forward(signum, frame):
    try:
        os.kill(pid, signum)
    except OSError:
        pass
for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(signum, forward)
line = answers.readline()
sys.exit(json.loads(line)["code"] if line else 1)
"""

USE_ZYGOTE = """
import os, subprocess, sys, tempfile
from pathlib import Path
from fedtutor.course import launcher

folder = Path(tempfile.mkdtemp(prefix="zygote-"))
(folder / "bin").mkdir()
(folder / "zygote.py").write_text(ZYGOTE_SERVER)
shim = folder / "bin" / "flwr-clientapp"
shim.write_text(SHIM.format(python=sys.executable))
shim.chmod(0o755)
environment, start = launcher.Deployment._environment, launcher.Deployment.start

def zygote_environment(self):
    env = environment(self)
    env["PATH"] = f"{folder / 'bin'}{os.pathsep}{env['PATH']}"  # the shim before Flower's flwr-clientapp
    env["FEDTUTOR_ZYGOTE"] = str(folder / "zygote.sock")
    return env

def zygote_start(self):  # the fork server carries the run's token: stop() ends it with the rest
    zygote = subprocess.Popen([sys.executable, str(folder / "zygote.py"), self.env["FEDTUTOR_ZYGOTE"]],
                              env=self.env, stdout=subprocess.PIPE, text=True)
    assert zygote.stdout.readline().strip() == "ready"
    start(self)

launcher.Deployment._environment, launcher.Deployment.start = zygote_environment, zygote_start
"""


def program(proc) -> str:
    """A short name for a process of the tree: flower-supernode, flwr-clientapp, python (the launcher) ..."""
    try:
        line = proc.cmdline()
    except Exception:  # noqa: BLE001 - gone meanwhile
        return "?"
    names = [Path(part).name for part in line[:3]]
    flower = [n for n in names if n.startswith(("flower-", "flwr"))]
    return flower[0] if flower else (names[0] if names else "?")


def measure(command: list[str], timeout: float, env: dict) -> dict:
    """Run ``command``; peak total PSS of its tree, the split by program at that moment, and wall time."""
    import psutil

    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
        root = psutil.Process(child.pid)
        peak, split = 0, {}
        while child.poll() is None:
            if time.perf_counter() - started > timeout:
                for proc in reversed(_tree(root)):
                    proc.kill()
                raise TimeoutError(f"{command[:3]} did not finish in {timeout:g} s")
            sample = collections.Counter()
            counts = collections.Counter()
            for proc in _tree(root):
                name = program(proc)
                sample[name] += _memory(proc)
                counts[name] += 1
            if sum(sample.values()) > peak:
                peak = sum(sample.values())
                split = {name: (counts[name], sample[name] / 1e6) for name in sample}
            time.sleep(0.2)
        wall = time.perf_counter() - started
        out.seek(0)
        text = out.read()
    if child.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed:\n{text[-3000:]}")
    return {"peak_mb": peak / 1e6, "split": split, "wall_s": wall, "out": text.strip()[-200:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="notebook 11's full-mode configuration")
    parser.add_argument("--only", choices=["classroom", "notebook11"], help="run one workload")
    parser.add_argument("--zygote", action="store_true", help="also (b) with the fork-server prototype")
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(REPO), FLWR_TELEMETRY_ENABLED="0")
    runs = {"baseline: python -c 'import torch'": [sys.executable, "-c", "import torch, time; time.sleep(1)"]}
    if args.only in (None, "classroom"):
        runs["(a) classroom, 2 local students"] = [sys.executable, "-c", textwrap.dedent(CLASSROOM)]
    if args.only in (None, "notebook11"):
        mode = "full" if args.full else "quick"
        runs[f"(b) notebook 11 deployment, {mode}"] = [sys.executable, "-c", textwrap.dedent(NOTEBOOK11), mode]
        if args.zygote:
            patch = f"ZYGOTE_SERVER = {ZYGOTE_SERVER!r}\nSHIM = {SHIM!r}\n{USE_ZYGOTE}"
            runs[f"(b) ... {mode}, zygote shape"] = [sys.executable, "-c", patch + textwrap.dedent(NOTEBOOK11), mode]
    results = {name: measure(command, 900, env) for name, command in runs.items()}
    base = next(iter(results.values()))["peak_mb"]
    print(f"{'workload':<40} {'peak MB':>8} {'x torch':>8} {'target':>7} {'wall s':>7}")
    for name, r in results.items():
        verdict = "ok" if r["peak_mb"] <= TARGET_MB else "OVER"
        print(f"{name:<40} {r['peak_mb']:>8.0f} {r['peak_mb'] / base:>8.1f} {verdict:>7} {r['wall_s']:>7.1f}")
        for program_name, (count, mb) in sorted(r["split"].items(), key=lambda item: -item[1][1]):
            print(f"    {program_name:<36} x{count:<3} {mb:>7.0f} MB")
        if r["out"]:
            print(f"    ({r['out']})")
    print(f"target: the whole tree under {TARGET_MB:.0f} MB (PSS, sampled every 0.2 s)")


if __name__ == "__main__":
    main()
