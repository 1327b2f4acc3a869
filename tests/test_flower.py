"""Flower integration: the same training code in fedtutor's engine and on Flower.

Collected only where ``flwr`` is installed (``pip install -e ".[flower]"``; CI installs it).
Fast tests drive the real ``ClientApp`` and the server loop through an in-process grid; the
process tests start a real SuperLink and SuperNodes on loopback, kill one client mid-run, and
check that every process is gone afterwards.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

flwr = pytest.importorskip("flwr")

import psutil  # noqa: E402 - after the skip: only these tests need it
from flwr.app import Context, Error, Message, RecordDict  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

from fedtutor import data, federated, flower  # noqa: E402
from fedtutor.course import launcher  # noqa: E402
from fedtutor.flower import DeploymentConfig, DeploymentError  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- an in-process grid


class InProcessGrid:
    """A test double for Flower's Grid: delivers each message straight to ``client_app`` in this
    process. Nodes listed in ``dead`` never answer, like a crashed client process; those in ``failing``
    answer at once with an error, like a node that just left; ``connected`` are the nodes the grid lists
    (all of them unless a test changes it: a late joiner, a node that left)."""

    def __init__(self, config: DeploymentConfig, dead: set[int] = frozenset(), failing: set[int] = frozenset()) -> None:
        # The runtime tells each Flower process who it is; messages built there carry it.
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 0, 0, 0
        self.app = flower.build_client_app()
        self.config, self.dead, self.failing = config, set(dead), set(failing)
        self.nodes = {100 + i: i for i in range(config.clients)}  # node id -> partition id
        self.connected = set(self.nodes)
        self.replies: dict[str, Message] = {}
        self.count = 0

    def get_node_ids(self):
        return sorted(self.connected)

    def push_messages(self, messages):
        ids = []
        for msg in messages:
            self.count += 1
            msg.metadata.__dict__["_message_id"] = f"m{self.count}"  # as Flower's InMemoryGrid does
            ids.append(msg.metadata.message_id)
            node = msg.metadata.dst_node_id
            if node in self.dead:
                continue
            if node in self.failing:
                self.replies[msg.metadata.message_id] = Message(Error(1, "node gone"), reply_to=msg)
                continue
            node_config = {"partition-id": self.nodes[node], "num-partitions": self.config.clients}
            context = Context(0, node, node_config, RecordDict(), self.config.to_run_config())
            self.replies[msg.metadata.message_id] = self.app(message=msg, context=context)
        return ids

    def pull_messages(self, message_ids):
        return [self.replies.pop(i) for i in list(message_ids) if i in self.replies]


def simulate(config: DeploymentConfig) -> tuple[federated.RoundHistory, torch.nn.Module]:
    """fedtutor's own engine on the same workload: all clients every round, same seed."""
    x, y = data.load_tensors()
    clients = [flower.partition_for(config, k, config.clients) for k in range(config.clients)]
    assert sum(len(c) for c in clients) == len(x)
    model = flower.initial_model(config)
    strategy = federated.FedAvg(fraction=1.0, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr)
    history = federated.run_federated(
        model, clients, data.load_tensors(train=False), strategy, config.rounds, config.seed, workers=1, progress=False
    )
    return history, model


# ----------------------------------------------------------------------------- fast tests


def test_flower_rounds_match_fedtutor_simulation():
    """Same seed, same partition, same training function: Flower's FedAvg (serialized through
    ArrayRecords, aggregated by flwr) reaches the same model as fedtutor's engine."""
    config = DeploymentConfig(clients=2, rounds=2, seed=3)
    records = flower.fedavg_rounds(InProcessGrid(config), config)
    sim_history, sim_model = simulate(config)
    assert [r["clients"] for r in records] == [[0, 1], [0, 1]]
    for mine, theirs in zip(records, sim_history.records, strict=True):
        assert mine["test_acc"] == pytest.approx(theirs["test_acc"], abs=2e-3)
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-4)
    assert records[-1]["test_acc"] > 0.8  # 2NN, 2 rounds, 5,000 MNIST-mini digits


def test_server_drops_a_silent_client_and_finishes():
    config = DeploymentConfig(clients=3, rounds=3, min_clients=2, straggler_timeout=0.5)
    grid = InProcessGrid(config, dead={102})
    records = flower.fedavg_rounds(grid, config)
    assert [r["clients"] for r in records] == [[0, 1], [0, 1], [0, 1]]
    assert [r["lost"] for r in records] == [1, 0, 1]  # lost, sits out round 2, asked again in round 3
    model_bytes = records[0]["bytes_up"] // 2
    assert [r["bytes_down"] for r in records] == [3 * model_bytes, 2 * model_bytes, 3 * model_bytes]
    assert records[-1]["test_acc"] > 0.5


def test_a_client_that_comes_back_under_the_same_node_id_is_asked_again():
    """A laptop that wakes up before its heartbeat timed out was listed all along, under the same id
    (with SuperNode authentication the id belongs to the student's key)."""
    config = DeploymentConfig(clients=2, rounds=3, straggler_timeout=0.3)
    grid = InProcessGrid(config, dead={101})
    records = flower.fedavg_rounds(grid, config, lambda record: grid.dead.clear())
    assert [r["clients"] for r in records] == [[0], [0], [0, 1]]


def test_an_error_reply_does_not_start_the_stragglers_clock(monkeypatch):
    """A node that just left answers with an error at once; the clients still training must not be
    dropped a straggler timeout after *that*."""
    config = DeploymentConfig(clients=3, rounds=1, straggler_timeout=0.3)
    grid = InProcessGrid(config, failing={100})
    answers, pull = {}, grid.pull_messages

    def slow_pull(message_ids):  # the error is there at once; the training clients answer after 1 s
        replies = pull(message_ids)
        answers.setdefault("t0", time.monotonic())
        held = [r for r in replies if not r.has_error() and time.monotonic() - answers["t0"] < 1.0]
        for r in held:
            grid.replies[r.metadata.reply_to_message_id] = r
        return [r for r in replies if r not in held]

    monkeypatch.setattr(grid, "pull_messages", slow_pull)
    records = flower.fedavg_rounds(grid, config)
    assert records[0]["clients"] == [1, 2] and records[0]["lost"] == 1


def test_server_stops_clearly_below_min_clients():
    config = DeploymentConfig(clients=2, rounds=2, min_clients=2, straggler_timeout=0.5)
    events = []
    with pytest.raises(DeploymentError, match=r"only 1 of 2 clients replied in time, fewer than min_clients=2"):
        flower.fedavg_rounds(InProcessGrid(config, dead={101}), config, events.append)
    assert events == []  # no round was reported as done


def test_each_round_goes_to_the_clients_connected_then(monkeypatch):
    """A student who joins after round 1 takes part from round 2; one who left is not waited for."""
    monkeypatch.setattr(flower, "CONNECT_S", 0.2)  # round 1 starts with who is there
    config = DeploymentConfig(clients=3, rounds=3, straggler_timeout=30.0)
    grid = InProcessGrid(config)
    grid.connected = {100, 101}  # 102 is not there yet

    def between_rounds(record):
        if record.get("round") == 1:
            grid.connected |= {102}  # the late joiner
        if record.get("round") == 2:
            grid.connected -= {100}  # leaves for good: no longer listed, never answers again
            grid.dead.add(100)

    started = time.monotonic()
    records = flower.fedavg_rounds(grid, config, between_rounds)
    assert [r["clients"] for r in records] == [[0, 1], [0, 1, 2], [1, 2]]
    assert [r["lost"] for r in records] == [0, 0, 0]
    assert time.monotonic() - started < 25  # nobody waited 30 s for the client that left


def test_a_silent_client_is_asked_again_once_it_reconnects():
    config = DeploymentConfig(clients=2, rounds=3, straggler_timeout=0.3)
    grid = InProcessGrid(config, dead={101})

    def between_rounds(record):
        if record.get("round") == 1:
            grid.connected -= {101}  # its heartbeat timed out: no longer listed
        if record.get("round") == 2:
            grid.connected |= {101}  # the laptop's lid opens again
            grid.dead.clear()

    records = flower.fedavg_rounds(grid, config, between_rounds)
    assert [r["clients"] for r in records] == [[0], [0], [0, 1]]
    assert [r["lost"] for r in records] == [1, 0, 0]


def test_same_seed_same_numbers():
    config = DeploymentConfig(clients=2, rounds=1, seed=7)
    first = flower.fedavg_rounds(InProcessGrid(config), config)
    second = flower.fedavg_rounds(InProcessGrid(config), config)
    assert [r["test_loss"] for r in first] == [r["test_loss"] for r in second]


def test_partitions_cover_the_data_once():
    for partition in flower.PARTITIONERS:
        config = DeploymentConfig(clients=3, partition=partition)
        parts = [flower.partition_for(config, k, 3) for k in range(3)]
        assert sum(len(p) for p in parts) == len(data.load_tensors()[1])
    with pytest.raises(ValueError, match="partition_id must be in 0..2"):
        flower.partition_for(DeploymentConfig(clients=3), 3, 3)


def test_train_examples_takes_a_seeded_subset():
    config = DeploymentConfig(clients=4, train_examples=1000, seed=1)
    parts = [flower.partition_for(config, k, 4) for k in range(4)]
    assert [len(p) for p in parts] == [250] * 4
    again = flower.partition_for(config, 2, 4)
    assert torch.equal(again.x, parts[2].x)


def test_commands_use_one_port_each_and_loopback():
    commands = launcher.deployment_commands(DeploymentConfig(clients=3, port=9300), "/app")
    assert list(commands) == ["superlink", "client-0", "client-1", "client-2", "run"]
    ports = [cmd[cmd.index("--port") + 1] for name, cmd in commands.items() if name != "run"]
    assert ports == ["9300", "9301", "9302", "9303"]
    assert all("127.0.0.1" in cmd for name, cmd in commands.items() if name != "run")
    assert "--disable-runtime-dependency-installation" in commands["superlink"]  # no installs at run time
    assert commands["client-2"][-1] == "partition-id=2 num-partitions=3"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"clients": 0}, "clients must be an integer >= 1"),
        ({"clients": 2, "min_clients": 3}, r"min_clients \(3\) cannot exceed clients \(2\)"),
        ({"model": "resnet"}, "Unknown model 'resnet'"),
        ({"partition": "random"}, "Unknown partition 'random'"),
        ({"straggler_timeout": 0}, "straggler_timeout must be positive"),
        ({"port": 80}, "port must be an integer in 1024"),
        ({"lr": float("inf")}, "lr must be a finite number, got inf"),
        ({"alpha": float("inf"), "partition": "dirichlet"}, "alpha must be a finite number"),
        ({"lr": float("nan")}, "lr must be positive, got nan"),
        ({"seed": -1}, r"seed must be a whole number from 0 to 2\*\*63 - 1"),
        ({"seed": 2**63}, r"seed must be a whole number from 0 to 2\*\*63 - 1"),
    ],
)
def test_bad_config_is_refused_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeploymentConfig(**kwargs)


def test_clients_are_bounded_by_free_memory_when_processes_start(monkeypatch):
    """Each client is a process of ~450 MB: with room for three, a fourth is refused, saying why."""
    monkeypatch.setattr(launcher, "available_memory", lambda: 3 * launcher.CLIENT_BYTES + 1)
    launcher.check_machine(DeploymentConfig(clients=3))
    with pytest.raises(ValueError, match=r"clients must be at most 3 on this machine.*GB of memory is free"):
        launcher.check_machine(DeploymentConfig(clients=4))
    monkeypatch.setattr(launcher, "available_memory", lambda: 10**15)  # a huge machine: still capped
    with pytest.raises(ValueError, match=f"clients must be at most {launcher.MAX_CLIENTS} "):
        launcher.check_machine(DeploymentConfig(clients=launcher.MAX_CLIENTS + 1))


def test_a_classroom_of_30_is_a_valid_config_on_a_small_machine(monkeypatch):
    """Students run their SuperNodes on their own laptops: the config itself does not bound clients."""
    monkeypatch.setattr(launcher, "available_memory", lambda: 2 * launcher.CLIENT_BYTES)
    assert DeploymentConfig(clients=30).clients == 30
    with pytest.raises(ValueError, match="clients must be at most 2 on this machine"):
        launcher.check_machine(DeploymentConfig(clients=30))  # but 30 local SuperNodes would not fit


def test_a_host_of_another_machine_is_refused_before_starting():
    config = DeploymentConfig(host="192.0.2.1")  # TEST-NET: never local
    with pytest.raises(ValueError, match="host '192.0.2.1' is not an address of this machine"):
        launcher.check_machine(config)


def test_run_deployment_checks_the_machine_before_anything_starts(monkeypatch, tmp_path):
    monkeypatch.setattr(launcher, "Deployment", lambda *a, **k: pytest.fail("a Deployment was made"))
    with pytest.raises(ValueError, match="clients must be at most"):
        launcher.run_deployment(DeploymentConfig(clients=10000), workdir=tmp_path / "logs", echo=pytest.fail)
    assert not (tmp_path / "logs").exists()


def test_loopback_names_are_accepted_as_host():
    assert DeploymentConfig(host="localhost").host == "localhost"
    assert DeploymentConfig(host="127.0.0.1").host == "127.0.0.1"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--clients", "10000"], "--clients: must be at most"),
        (["--host", "192.0.2.1"], "--host: '192.0.2.1' is not an address of this machine"),
        (["--seed", "-1"], "--seed: must be a whole number from 0"),
        (["--alpha", "inf"], "--alpha"),
    ],
)
def test_cli_refuses_what_the_config_refuses(args, message, capsys, monkeypatch):
    from fedtutor.course.cli import main

    monkeypatch.setattr(launcher, "Deployment", lambda *a, **k: pytest.fail("a Deployment was made"))

    assert main(["flower", *args]) == 2  # exits before starting any process
    assert message in capsys.readouterr().err


def test_logs_that_is_a_file_is_refused_before_starting(tmp_path):
    a_file = tmp_path / "logs"
    a_file.write_text("not a folder")
    with pytest.raises(ValueError, match="workdir '.*logs' is a file, not a folder"):
        launcher.run_deployment(DeploymentConfig(clients=1, rounds=1), workdir=a_file, echo=lambda line: None)
    assert a_file.read_text() == "not a folder"


def test_run_config_round_trip():
    config = DeploymentConfig(clients=4, batch_size=0, partition="dirichlet", alpha=0.3)
    assert DeploymentConfig.from_run_config({**config.to_run_config(), "progress-file": "x"}) == config


def test_cli_rejects_bad_values_with_status_2(capsys):
    from fedtutor.course.cli import main

    assert main(["flower", "--clients", "2", "--min-clients", "5"]) == 2
    assert "min_clients (5) cannot exceed clients (2)" in capsys.readouterr().err


def test_busy_port_is_reported_before_starting_anything(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = DeploymentConfig(clients=1, rounds=1, port=port)
        with pytest.raises(DeploymentError, match=f"port {port} on 127.0.0.1 is already in use"):
            launcher.run_deployment(config, workdir=tmp_path, echo=lambda line: None)
    assert not list(tmp_path.glob("*.log"))  # nothing was started


def test_without_flwr_fedtutor_works_and_says_how_to_install():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["flwr"] = None  # as if flwr were not installed
        import fedtutor, fedtutor.data, fedtutor.federated, fedtutor.flower as fl
        from fedtutor.course import launcher
        from fedtutor.course.cli import main
        assert not fl.flower_available()
        fl.DeploymentConfig(clients=3)  # configuration needs no Flower
        for build in (fl.build_client_app, lambda: fl.server_app, lambda: launcher.run_deployment()):
            try:
                build()
            except fl.FlowerNotInstalled as err:
                assert 'pip install "fedtutor[flower]"' in str(err), err
            else:
                raise AssertionError("no FlowerNotInstalled")
        sys.exit(main(["flower"]))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 1, done.stderr
    assert (
        'needs Flower (the `flwr` package), which is not installed. Fix: pip install "fedtutor[flower]"' in done.stderr
    )


# ----------------------------------------------------------------------------- real processes


def free_port_block(n: int) -> int:
    """A base port with ``n`` free ports after it (checked, then released)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n < 65535 and all(_free(p) for p in range(base, base + n)):
            return base
    raise RuntimeError("no free port block")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def processes_using(ports: range) -> list[str]:
    """Live (non-zombie) processes whose command line names one of our ports."""
    marks = [f"127.0.0.1:{p}" for p in ports] + [f"--port {p}" for p in ports]
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            line = " ".join(proc.info["cmdline"] or [])
        except psutil.Error:
            continue
        if proc.info["status"] != psutil.STATUS_ZOMBIE and proc.pid != os.getpid() and any(m in line for m in marks):
            found.append(f"{proc.pid}: {line}")
    return found


def marked(mark: str) -> list[str]:
    """Live processes that inherited ``FEDTUTOR_TEST_MARK=mark``: the whole tree a test started,
    whoever their parent is now (Flower's helpers run in sessions of their own)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and proc.environ().get("FEDTUTOR_TEST_MARK") == mark:
                found.append(f"{proc.pid}: {' '.join(proc.info['cmdline'] or [])[:120]}")
        except psutil.Error:
            continue
    return found


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return bool(condition())


def kill_marked(mark: str) -> None:
    """After a failed test, kill what it started, so no server outlives the test."""
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("FEDTUTOR_TEST_MARK") == mark:
                proc.kill()
        except psutil.Error:
            continue


def kill_tree(run: subprocess.Popen) -> None:
    """After a failed test, stop the CLI *and* what it started, so no server outlives the test."""
    try:
        for child in psutil.Process(run.pid).children(recursive=True):
            child.kill()
    except psutil.NoSuchProcess:
        pass
    run.kill()


def _like_a_terminal() -> None:
    """Ctrl-C reaches a command typed in a terminal. A test runner started in the background
    (``cmd &`` in a script, as CI may be) inherits SIGINT *ignored*, and Python keeps ignoring it,
    so restore the default before exec: the test then sees what a learner's terminal sees."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def fedtutor_flower(*args: str, mark: str = "", python: tuple[str, ...] = ("-m", "fedtutor", "flower")):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FEDTUTOR_TEST_MARK": mark}
    return subprocess.Popen(
        [sys.executable, *python, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
        preexec_fn=_like_a_terminal,
    )


def test_cli_deployment_survives_a_killed_client_and_leaves_no_process(tmp_path):
    port, mark = free_port_block(4), f"killed-client-{os.getpid()}"
    run = fedtutor_flower(
        *("--clients", "3", "--rounds", "2", "--min-clients", "2", "--straggler-timeout", "8"),
        *("--kill-client-after-round", "1", "--port", str(port), "--logs", str(tmp_path)),
        mark=mark,
    )
    try:
        out, err = run.communicate(timeout=300)
        assert marked(mark) == []
    finally:
        kill_tree(run)
        kill_marked(mark)
    assert run.returncode == 0, f"{out}\n{err}"
    lines = [line for line in out.splitlines() if line.startswith("round ")]
    assert [line.split(":")[0] for line in lines] == ["round 1/2", "round 2/2"]
    assert "3 clients" in lines[0] and "2 clients; lost client(s) [2]" in lines[1]
    final_acc = float(lines[-1].split("test accuracy ")[1].split("%")[0]) / 100
    assert final_acc > 0.5  # well above chance (10%)
    assert "all Flower processes stopped" in out
    assert processes_using(range(port, port + 4)) == []
    if sys.platform.startswith("linux"):  # the fork server ran Flower's processes
        forked = (tmp_path / "forkserver.log").read_text()
        assert forked.count("flower-superexec: process") == 4 and "flwr-serverapp: process" in forked
        assert forked.count("flwr-clientapp: process") >= 5  # 3 in round 1, 2 in round 2


def started(mark: str, port: int) -> bool:
    """The SuperLink, both SuperNodes and their helpers are up (a SuperExec and a ClientApp are
    started by Flower itself, not by the launcher)."""
    return len(marked(mark)) >= 6 and bool(processes_using(range(port + 1, port + 3)))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is Linux-only")
def test_without_the_fork_server_the_same_numbers(tmp_path):
    """Flower's own shape (a fresh process per message: macOS, Windows, FEDTUTOR_FORKSERVER=0) reaches
    fedtutor's simulation, as notebook 11 checks for the fork server's shape on every CI run."""
    port = free_port_block(3)
    command = [sys.executable, "-m", "fedtutor", "flower", "--clients", "2", "--rounds", "1", "--port", str(port)]
    env = dict(os.environ, FEDTUTOR_FORKSERVER="0")
    run = subprocess.run([*command, "--logs", str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    line = next(line for line in run.stdout.splitlines() if line.startswith("round 1/1"))
    accuracy = float(line.split("test accuracy ")[1].split("%")[0]) / 100
    history, _ = simulate(DeploymentConfig(clients=2, rounds=1))
    assert accuracy == pytest.approx(history.records[-1]["test_acc"], abs=2e-3)
    assert not (tmp_path / "forkserver.log").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals and Linux's parent-death signal")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_the_launcher_stops_every_process(tmp_path, signum):
    """Ctrl-C (SIGINT), kill or a container stop (SIGTERM), a closed terminal (SIGHUP)."""
    port, mark = free_port_block(3), f"signal-{signum}-{os.getpid()}"
    run = fedtutor_flower("--clients", "2", "--rounds", "50", "--port", str(port), "--logs", str(tmp_path), mark=mark)
    try:
        assert wait_until(lambda: started(mark, port), 150), f"the deployment never started: {marked(mark)}"
        time.sleep(2)  # the round is under way: ClientApps are training
        run.send_signal(signum)
        out, err = run.communicate(timeout=60)
        assert wait_until(lambda: not marked(mark), 10), marked(mark)
    finally:
        kill_tree(run)
        kill_marked(mark)
    assert run.returncode == 130, f"{out}\n{err}"
    assert "interrupted; all Flower processes were stopped" in err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's parent-death signal")
def test_the_death_of_the_starting_process_stops_every_process(tmp_path):
    """A Jupyter kernel restart during notebook 11: the Python process that called run_deployment
    dies without running any clean-up (SIGKILL); within seconds nothing of the run may remain."""
    port, mark = free_port_block(3), f"parent-death-{os.getpid()}"
    code = (
        "import sys; from fedtutor.course import launcher; from fedtutor.flower import DeploymentConfig; "
        "launcher.run_deployment(DeploymentConfig(clients=2, rounds=50, port=int(sys.argv[1])), workdir=sys.argv[2])"
    )
    run = fedtutor_flower(str(port), str(tmp_path), mark=mark, python=("-c", code))
    try:
        assert wait_until(lambda: started(mark, port), 150), f"the deployment never started: {marked(mark)}"
        time.sleep(2)
        run.kill()
        run.communicate(timeout=30)
        assert wait_until(lambda: not marked(mark), 15), marked(mark)
    finally:
        kill_marked(mark)


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_signals_after_the_first_cannot_cut_the_clean_up_short(tmp_path):
    """`timeout` and a terminal pass a Ctrl-C on to the whole group, so a command often gets it two or
    three times in a row: the first must start the clean-up and the others must not interrupt it."""
    done = tmp_path / "cleaned-up"
    code = textwrap.dedent(f"""
        import signal, sys, time
        from fedtutor.course.launcher import raise_on_signals, restore_handlers
        previous = raise_on_signals((signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
        try:
            print("ready", flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            try:
                time.sleep(1.5)  # the clean-up: the other signals arrive meanwhile
                open({str(done)!r}, "w").write("ok")
            finally:
                restore_handlers(previous)
            sys.exit(130)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            proc.send_signal(signum)
            time.sleep(0.1)
        assert proc.wait(timeout=30) == 130
    finally:
        proc.kill()
    assert done.read_text() == "ok"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # this process's handlers are untouched
