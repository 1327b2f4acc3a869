"""The Flower process launcher behind ``fedtutor flower`` and notebook 11.

``run_deployment`` starts one ``flower-superlink`` process (the server's network endpoint),
one ``flower-supernode`` process per client, submits the course's Flower app
(``fedtutor.flower:server_app`` / ``:client_app``) with ``flwr run``, prints the accuracy of
every round, and shuts every process down, also on Ctrl-C, on a failure or on a timeout.

Nothing outlives the run. Every process of a run carries a token in its environment
(``FEDTUTOR_FLOWER_RUN``; Flower's SuperExecs and app processes inherit it), so the run's
processes are found by the token, whoever their parent is now. Stopping them is done:
- on leaving the ``Deployment`` block: normal end, an error, Ctrl-C (SIGINT), and SIGTERM or
  SIGHUP, which ``run_deployment`` turns into ``Interrupted`` (a ``KeyboardInterrupt``);
- when the Python process that started the run dies without cleaning up (SIGKILL, a Jupyter
  kernel restart): the SuperLink and SuperNodes get SIGTERM from the kernel (Linux's
  ``PR_SET_PDEATHSIG``), and a watchdog process, which waits for its pipe from the launcher to
  close, kills whatever still carries the token.

By default ``flwr run`` makes the SuperLink install the app's dependencies into a fresh
environment (with torch listed, a multi-GB download); we pass
``--disable-runtime-dependency-installation``, so the apps run in the environment that is
already installed, with no Ray, and a run starts in seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

from fedtutor import data
from fedtutor.federated import RoundHistory
from fedtutor.flower import (
    DATA_FOLDER_ENV,
    INSTALL_HINT,
    POLL_S,
    RUN_ENV,
    DeploymentConfig,
    DeploymentError,
    require_flower,
)

APP_PYPROJECT = """\
# Written by fedtutor.course.launcher for one run; `flwr run` reads it to know which apps to start.
[project]
name = "fedtutor-flower"
version = "1.0.0"
description = "fedtutor's MNIST FedAvg as a Flower app"
license = "MIT"
dependencies = []  # none: the apps run in the environment that is already installed

[tool.flwr.app]
publisher = "fedtutor"

[tool.flwr.app.components]
serverapp = "{serverapp}"
clientapp = "{clientapp}"

[tool.flwr.app.config]
{config}
"""

FLOWER_CONFIG = """\
[superlink]
default = "fedtutor"

[superlink.fedtutor]
address = "{address}"
insecure = true
"""


CLIENT_BYTES = 450 * 2**20  # memory of one SuperNode and its apps: Python + torch + a partition of MNIST
MAX_CLIENTS = 64  # one machine, one class: beyond this a simulation (fedtutor.federated) is the tool


def available_memory() -> int:
    """Bytes of memory free for new processes (psutil when installed, else the OS's free pages)."""
    try:
        import psutil

        return psutil.virtual_memory().available
    except ImportError:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_machine(config: DeploymentConfig) -> None:
    """Can this machine start the run's processes? Each client is a SuperNode process (~450 MB), and
    ``host`` must be an address of this machine. Checked before a ``Deployment`` starts anything; a
    classroom's SuperNodes run on the students' laptops, so its size is not bounded here.
    Raises ``ValueError`` naming the field (``fedtutor flower`` shows it as a usage error)."""
    limit = min(MAX_CLIENTS, available_memory() // CLIENT_BYTES)
    if config.clients > limit:
        raise ValueError(
            f"clients must be at most {limit} on this machine: each client is a process of about "
            f"{CLIENT_BYTES / 2**30:.2f} GB, {available_memory() / 2**30:.1f} GB of memory is free, and "
            f"at most {MAX_CLIENTS} in any case; got {config.clients}. For more clients, simulate them "
            "in one process with fedtutor.federated."
        )
    try:  # binding is the test: the servers will listen there
        family, kind, _, _, address = socket.getaddrinfo(config.host, 0, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as s:
            s.bind(address)
    except (OSError, UnicodeError) as err:
        raise ValueError(
            f"host {config.host!r} is not an address of this machine ({err}). Fix: 127.0.0.1 for one "
            "machine, or an address of one of its network interfaces."
        ) from None


def free_port_block(count: int, start: int = 9100, host: str = "127.0.0.1") -> int:
    """The first port ``p >= start`` such that ``p .. p + count - 1`` are all free on ``host``."""
    for base in range(start, 65536 - count):
        if all(_port_free(host, p) for p in range(base, base + count)):
            return base
    raise DeploymentError(f"no {count} consecutive free ports on {host} from {start} up.")


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        if os.name == "posix":  # like the servers themselves: a closed socket in TIME_WAIT is no conflict
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def deployment_commands(config: DeploymentConfig, app: str | Path = "app") -> dict[str, list[str]]:
    """The command lines of a deployment: ``superlink``, ``client-0`` ... and ``run``.

    On a real network each would run on its own machine, with certificates instead of
    ``--insecure`` (see notebook 11).
    """
    c = config
    commands = {
        "superlink": ["flower-superlink", "--insecure", "--disable-runtime-dependency-installation"]
        + ["--host", c.host, "--port", str(c.port)]
    }
    for i in range(c.clients):
        commands[f"client-{i}"] = ["flower-supernode", "--insecure", "--superlink", f"{c.host}:{c.port}"] + [
            *("--host", c.host, "--port", str(c.port + 1 + i)),
            *("--node-config", f"partition-id={i} num-partitions={c.clients}"),
        ]
    commands["run"] = ["flwr", "run", str(app), "fedtutor"]
    return commands


# The watchdog: a separate process (own session, so a signal to the launcher's process group
# spares it) that blocks on its stdin; the pipe closes when the launcher stops the run or dies.
WATCHDOG = """\
import os, sys, psutil
sys.stdin.buffer.read()
token = sys.argv[1]
def ours(p):
    try:
        return p.pid != os.getpid() and p.environ().get("FEDTUTOR_FLOWER_RUN") == token
    except psutil.Error:
        return False
procs = [p for p in psutil.process_iter() if ours(p)]
for p in procs:
    try:
        p.terminate()
    except psutil.Error:
        pass
_, alive = psutil.wait_procs(procs, timeout=3)
for p in alive:
    try:
        p.kill()
    except psutil.Error:
        pass
"""


def submit_app(command: list[str], env: dict[str, str], cwd: Path) -> None:
    """``flwr run``: hand the app to the SuperLink, or say why it could not."""
    submit = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    if submit.returncode != 0:
        raise DeploymentError(f"`flwr run` could not submit the app:\n{submit.stdout}{submit.stderr}")


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP reached ``run_deployment``: it stops every process, like on Ctrl-C."""


def run_processes(token: str) -> list:
    """Every live process whose environment carries this run's token (psutil.Process objects)."""
    import psutil

    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get(RUN_ENV) == token and _running(proc):
                found.append(proc)
        except psutil.Error:  # gone, or another user's process
            continue
    return found


def kill_survivors(procs: list, grace: float) -> None:
    """Wait up to ``grace`` s for these processes (psutil.Process objects) to end; SIGKILL the rest."""
    import psutil

    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        _quietly(proc.kill)
    psutil.wait_procs(alive, timeout=5)


def _die_with_parent() -> None:
    """In a child, before exec: Linux sends it SIGTERM when the thread that started it ends."""
    import ctypes

    PR_SET_PDEATHSIG = 1  # noqa: N806 - the name in <sys/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def child_options() -> dict:
    """``subprocess.Popen`` options for a Flower process we stop ourselves: a new session, so Ctrl-C
    in the terminal reaches only us and we stop the children in order; on Linux, a SIGTERM when we die."""
    options = {"start_new_session": True} if os.name == "posix" else {}
    if sys.platform.startswith("linux"):
        options["preexec_fn"] = _die_with_parent
    return options


def flower_environment(home: Path, data_folder: Path | None, token: str) -> dict[str, str]:
    """The environment of every Flower process of a run: this venv's commands first, fedtutor
    importable, Flower's home, no telemetry, the data folder, and the run's token."""
    scripts = Path(sysconfig.get_path("scripts"))
    if shutil.which("flower-superlink", path=str(scripts)) is None:
        raise DeploymentError(
            f"Flower's commands (flower-superlink, ...) are not in {scripts}. Fix: {INSTALL_HINT} "
            "in the environment that runs this Python."
        )
    env = dict(os.environ)
    # Flower starts helper processes by command name, so this environment's commands come first.
    env["PATH"] = str(scripts) + os.pathsep + env.get("PATH", "")
    package_root = str(Path(__file__).resolve().parents[2])  # fedtutor importable in every process
    env["PYTHONPATH"] = package_root + os.pathsep + env.get("PYTHONPATH", "")
    env["FLWR_HOME"] = str(home)
    env["FLWR_TELEMETRY_ENABLED"] = "0"  # no network calls from a classroom laptop
    env["FLWR_DISABLE_UPDATE_CHECK"] = "1"
    # Found once here, so every process reads the same files (see fedtutor.flower.load_split).
    env[DATA_FOLDER_ENV] = str(data_folder or data.mnist_source().root / "MNIST" / "raw")
    env["PYTHONUNBUFFERED"] = "1"
    env[RUN_ENV] = token
    return env


def start_forkserver(folder: Path, env: dict[str, str]) -> tuple[subprocess.Popen | None, dict[str, str]]:
    """The fork server for this run's app processes where it is wanted (see ``forkserver``), and the
    environment for the Flower processes that will use it."""
    from fedtutor.course import forkserver

    return forkserver.start(folder, env, child_options()) if forkserver.wanted() else (None, env)


class Deployment:
    """One SuperLink, ``config.clients`` SuperNodes and a submitted run, as child processes.

    Use it as a context manager: leaving the block (normally, by an exception or by Ctrl-C)
    stops every process it started, including the helpers Flower starts on its own.
    """

    def __init__(
        self,
        config: DeploymentConfig,
        workdir: Path,
        echo: Callable[[str], None] = print,
        data_folder: Path | None = None,
        app_folder: Path | None = None,
    ) -> None:
        require_flower("fedtutor's Flower deployment")
        self.config, self.workdir, self.echo = config, workdir, echo
        self.data_folder, self.app_folder = data_folder, app_folder  # app_folder: a learner's *_app.py files
        self.progress = workdir / "progress.jsonl"
        self.superlink: subprocess.Popen | None = None
        self.supernodes: list[subprocess.Popen] = []
        self.token = uuid.uuid4().hex
        self.env = self._environment()
        self.watchdog: subprocess.Popen | None = None
        self.forkserver: subprocess.Popen | None = None

    # -- setup
    def _environment(self) -> dict[str, str]:
        return flower_environment(self.workdir / "flwr-home", self.data_folder, self.token)

    def _write_app(self) -> Path:
        app = self.workdir / "app"
        app.mkdir(parents=True, exist_ok=True)
        run_config = {**self.config.to_run_config(), "progress-file": str(self.progress)}
        lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in run_config.items())
        components = {"serverapp": "fedtutor.flower:server_app", "clientapp": "fedtutor.flower:client_app"}
        if self.app_folder is not None:  # the learner's files, copied as they are now; their folder is not touched
            for name in ("client_app.py", "server_app.py"):
                shutil.copyfile(self.app_folder / name, app / name)
            components = {"serverapp": "server_app:app", "clientapp": "client_app:app"}
        (app / "pyproject.toml").write_text(APP_PYPROJECT.format(config=lines, **components), encoding="utf-8")
        home = self.workdir / "flwr-home"
        home.mkdir(parents=True, exist_ok=True)
        address = f"{self.config.host}:{self.config.port}"
        (home / "config.toml").write_text(FLOWER_CONFIG.format(address=address), encoding="utf-8")
        return app

    def _check_ports_free(self) -> None:
        c = self.config
        for port in range(c.port, c.port + c.clients + 1):
            if not _port_free(c.host, port):
                raise DeploymentError(
                    f"port {port} on {c.host} is already in use (another Flower run, or another program). "
                    f"Fix: choose free ones, e.g. --port {free_port_block(c.clients + 1, c.port + 1, c.host)} "
                    f"(a run uses {c.clients + 1} consecutive ports)."
                )

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed when the process ends
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.workdir, **child_options()
        )
        log.close()
        return process

    def start(self) -> None:
        c = self.config
        check_machine(c)  # before any process starts: memory for every SuperNode, a host of this machine
        self._check_ports_free()
        app = self._write_app()
        if os.name == "posix":
            self.watchdog = subprocess.Popen(
                [sys.executable, "-c", WATCHDOG, self.token], stdin=subprocess.PIPE, start_new_session=True
            )
        self.forkserver, self.env = start_forkserver(self.workdir, self.env)
        commands = deployment_commands(c, app)
        self.superlink = self._spawn("superlink", commands["superlink"])
        for i in range(c.clients):
            self.supernodes.append(self._spawn(f"client-{i}", commands[f"client-{i}"]))
        self._wait_for_port(c.host, c.port, timeout=60.0)
        submit_app(commands["run"], self.env, self.workdir)

    def _wait_for_port(self, host: str, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    return
            except OSError:
                time.sleep(POLL_S)
        raise DeploymentError(
            f"the SuperLink did not open {host}:{port} within {timeout:g} s. {self._log_tail('superlink')}"
        )

    def _check_alive(self) -> None:
        assert self.superlink is not None
        if self.superlink.poll() is not None:
            raise DeploymentError(
                f"the SuperLink exited with status {self.superlink.returncode}. {self._log_tail('superlink')}"
            )

    def _log_tail(self, name: str, lines: int = 15) -> str:
        path = self.workdir / f"{name}.log"
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
        return f"Last lines of {path}:\n" + "\n".join(text)

    # -- running
    def events(self, timeout: float) -> Iterable[dict]:
        """The ServerApp's progress records as they appear; ends at ``done`` or raises on error/timeout."""
        deadline = time.monotonic() + timeout
        offset = 0
        while time.monotonic() < deadline:
            self._check_alive()
            if self.progress.exists():
                with open(self.progress, encoding="utf-8") as f:
                    f.seek(offset)
                    chunk = f.read()
                complete = chunk[: chunk.rfind("\n") + 1]  # only whole lines: the server may be mid-write
                offset += len(complete.encode("utf-8"))
                for line in complete.splitlines():
                    event = json.loads(line)
                    if "error" in event:
                        raise DeploymentError(f"the server stopped: {event['error']}")
                    if event.get("done"):
                        return
                    yield event
            time.sleep(POLL_S)
        raise DeploymentError(f"no result after {timeout:g} s; stopped everything. {self._log_tail('superlink')}")

    def kill_client(self, i: int) -> None:
        """Simulate a crash: SIGKILL client i's SuperNode and everything it started, no goodbye."""
        for proc in self._tree(self.supernodes[i].pid):
            _quietly(proc.kill)
        self.supernodes[i].wait(timeout=10)

    # -- shutdown
    def _tree(self, pid: int) -> list:
        import psutil

        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def stop(self) -> None:
        """SIGTERM to the SuperNodes, the SuperLink, the fork server; 5 s later SIGKILL to anything left."""
        try:
            # Clients first, then the server; psutil.Process remembers each start time, so a reused
            # pid is never signalled by mistake.
            ordered = [p for p in (*self.supernodes, self.superlink, self.forkserver) if p is not None]
            for process in ordered:
                if process.poll() is None:
                    _quietly(process.send_signal, signal.SIGTERM)
            kill_survivors(run_processes(self.token), grace=5)
            for process in ordered:
                _quietly(process.wait, timeout=5)
        finally:  # even if a second signal cut the above short: the watchdog sweeps what is left
            from fedtutor.course import forkserver

            forkserver.remove_socket(self.env)
            if self.watchdog is not None:
                _quietly(self.watchdog.stdin.close)
                _quietly(self.watchdog.wait, timeout=10)

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _running(proc) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _quietly(action: Callable, *args, **kwargs) -> None:
    """Signal or wait on a process that may already be gone."""
    with contextlib.suppress(Exception):  # gone, already reaped, or a timeout: all mean "nothing to do"
        action(*args, **kwargs)


def run_deployment(
    config: DeploymentConfig | None = None,
    kill_client_after_round: int | None = None,
    timeout: float | None = None,
    workdir: str | Path | None = None,
    echo: Callable[[str], None] | None = None,
    data_folder: str | Path | None = None,
    app: str | Path | None = None,
) -> RoundHistory:
    """Run FedAvg on Flower as real processes on this machine; returns the per-round ``History``.

    ``kill_client_after_round=k`` kills the last client's process after round k (a crash, to
    watch the server carry on). ``timeout``: overall limit in seconds (default: generous for
    the rounds asked). Logs of every process land in ``workdir`` (default: a temporary folder,
    removed afterwards). ``app``: a folder with your own ``client_app.py`` and ``server_app.py``
    (``app = ClientApp()`` / ``app = ServerApp()`` in each; notebook 11) to run instead of fedtutor.flower's.
    """
    config = config or DeploymentConfig()
    echo = echo or (lambda line: print(line, flush=True))  # flushed: the launcher is often piped
    require_flower("fedtutor's Flower deployment")
    if kill_client_after_round is not None and not 1 <= kill_client_after_round < config.rounds:
        raise ValueError(f"kill_client_after_round must be in 1..{config.rounds - 1}, got {kill_client_after_round}.")
    check_machine(config)  # also in Deployment.start; here, before the folder and the first line printed
    if workdir is not None and Path(workdir).exists() and not Path(workdir).is_dir():
        raise ValueError(f"workdir {str(workdir)!r} is a file, not a folder. Fix: name a folder for the logs.")
    missing = [name for name in ("client_app.py", "server_app.py") if app and not (Path(app) / name).is_file()]
    if missing:
        fix = "Fix: fedtutor.course.flower_app.copy_app(folder) writes the missing ones."
        raise ValueError(f"app folder {str(app)!r} has no {' or '.join(missing)}. {fix}")
    timeout = timeout or 120 + config.rounds * (config.first_reply_timeout + config.straggler_timeout)
    keep = workdir is not None
    folder = Path(workdir) if keep else Path(tempfile.mkdtemp(prefix="fedtutor-flower-"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # e.g. a file where a parent folder should be
        raise ValueError(f"workdir {str(workdir)!r} cannot be created ({err}). Fix: name a writable folder.") from None
    history = RoundHistory(label=f"Flower, {config.clients} client processes", config=asdict(config))
    history.config["app"] = str(Path(app).resolve()) if app is not None else "fedtutor.flower"
    started = time.monotonic()
    previous = raise_on_signals()
    try:
        app_folder = Path(app).resolve() if app is not None else None
        with Deployment(config, folder, echo, Path(data_folder) if data_folder else None, app_folder) as deployment:
            echo(
                f"Flower {flwr_version()}: SuperLink on {config.host}:{config.port}, {config.clients} SuperNodes, "
                f"{config.rounds} rounds of FedAvg ({config.model}, {config.partition} partition)"
            )
            deployment.start()
            for record in deployment.events(timeout):
                history.records.append(record)
                lost = f"; lost client(s) {record['dropped'] or record['lost']}" if record["lost"] else ""
                echo(
                    f"round {record['round']}/{config.rounds}: test accuracy {record['test_acc']:.2%}, "
                    f"loss {record['test_loss']:.3f}, {len(record['clients'])} clients{lost}"
                )
                if record["round"] == kill_client_after_round:
                    echo(f"killing client {config.clients - 1} (SIGKILL) to simulate a crash")
                    deployment.kill_client(config.clients - 1)
        history.config["wall_s"] = time.monotonic() - started
        echo(f"done in {history.config['wall_s']:.1f} s; all Flower processes stopped")
        return history
    finally:
        restore_handlers(previous)
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def raise_on_signals(signums: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP)) -> dict:
    """The first of these signals (SIGTERM: ``kill``, a container stop; SIGHUP: a closed terminal)
    raises ``Interrupted`` in the main thread, so ``with`` blocks stop every process they started.
    Later ones are ignored: a second Ctrl-C, or ``timeout`` passing the signal on to the whole
    group, must not cut that clean-up short. Returns the handlers replaced, for ``restore_handlers``."""
    if threading.current_thread() is not threading.main_thread() or os.name != "posix":
        return {}  # only the main thread may set handlers; the watchdog still covers the end of the process
    raised = []

    def interrupt(signum, frame):
        if not raised:  # a flag, not SIG_IGN: a signal already pending would still raise a second time
            raised.append(signum)
            raise Interrupted(f"stopped by {signal.Signals(signum).name}")

    return {signum: signal.signal(signum, interrupt) for signum in signums}


def restore_handlers(previous: dict) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def flwr_version() -> str:
    from importlib.metadata import version

    return version("flwr")
