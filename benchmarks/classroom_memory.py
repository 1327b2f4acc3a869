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

Deployment shapes: by default fedtutor's fork server (``fedtutor.course.forkserver``) forks every
``flwr-clientapp`` / ``flwr-serverapp`` from one process that imported torch, Flower and fedtutor
once, so they share those pages copy-on-write. ``--compare`` also runs each workload in Flower
1.42's own shape (``FEDTUTOR_FORKSERVER=0``): the SuperExec starts a fresh app process for every
message, and each imports torch (~280 MB of private memory with the CUDA wheel).
``flower-supernode --isolation process`` does not change that in 1.42: the SuperExec then runs
outside the SuperNode but still starts one ``flwr-clientapp`` per message.

Usage: python benchmarks/classroom_memory.py [--full] [--only classroom|notebook11] [--compare]
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
            student.start(share_forkserver=room)  # as notebook 12 does
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


def program(proc) -> str:
    """A short name for a process of the tree: flower-supernode, flwr-clientapp, python (the launcher) ..."""
    try:
        line, comm = proc.cmdline(), proc.name()
    except Exception:  # noqa: BLE001 - gone meanwhile
        return "?"
    if "fedtutor.course.forkserver" in line:  # a process forked by the fork server names itself
        return f"{comm} (forked)" if comm.startswith(("flwr", "flower")) else "fork server"
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
    parser.add_argument("--compare", action="store_true", help="also each workload without the fork server")
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(REPO), FLWR_TELEMETRY_ENABLED="0")
    runs = {"baseline: python -c 'import torch'": ([sys.executable, "-c", "import torch, time; time.sleep(1)"], "")}
    mode = "full" if args.full else "quick"
    workloads = {
        "(a) classroom, 2 local students": [sys.executable, "-c", textwrap.dedent(CLASSROOM)],
        f"(b) notebook 11 deployment, {mode}": [sys.executable, "-c", textwrap.dedent(NOTEBOOK11), mode],
    }
    for name, command in workloads.items():
        if args.only is None or args.only in name.replace(" ", ""):
            runs[name] = (command, "")
            if args.compare:  # Flower's own shape: one fresh app process per message
                runs[f"{name}, no fork server"] = (command, "0")
    results = {
        name: measure(command, 900, dict(env, FEDTUTOR_FORKSERVER=switch)) for name, (command, switch) in runs.items()
    }
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
