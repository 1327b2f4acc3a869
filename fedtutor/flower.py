"""The course's model and client training, deployed on Flower as real server and client processes.

Everything federated so far ran inside one Python process. Here the same code runs on
`Flower <https://flower.ai>`_ (``pip install "fedtutor[flower]"``), the most widely used
open-source federated-learning engine, as separate operating-system processes that talk
over the network (127.0.0.1 by default):

- **client side**: ``local_update`` trains a copy of the global model on one partition of
  MNIST with ``fedtutor.federated.train_client`` (itself ``training.train_epoch`` over
  ``training.batches``), the very function the in-process engine calls. Flower's
  ``ClientApp`` (``client_app``) only unpacks the message and packs the reply.
- **server side**: ``server_app`` runs FedAvg rounds. It builds one training message per
  connected client, waits for the replies with a per-round deadline, and aggregates them with
  Flower's own ``flwr.serverapp.strategy.FedAvg`` (weighted by number of examples, as in
  McMahan et al.), then evaluates the global model with ``training.evaluate``.
- ``run_deployment`` (and ``fedtutor flower``) starts it all: one ``flower-superlink``
  process (the server's network endpoint), one ``flower-supernode`` process per client,
  submits the app with ``flwr run``, prints the accuracy of every round, and shuts every
  process down, also on Ctrl-C, on a failure or on a timeout.

Why this API. Since Flower 1.13 (late 2024) ``start_server``/``start_client`` are deprecated;
the recommended deployment is a long-running SuperLink and SuperNodes that execute a
``ServerApp``/``ClientApp`` pair submitted with ``flwr run``, and since 1.21 apps exchange
``Message``\\ s carrying ``ArrayRecord``\\ s (the "Message API"). That is what this module uses.
By default ``flwr run`` makes the SuperLink install the app's dependencies into a fresh
environment (with torch listed, a multi-GB download); we pass
``--disable-runtime-dependency-installation`` (SuperNodes do not install unless asked), so the
apps run in the environment that is already installed, with no Ray, and a run starts in seconds.

Fault tolerance. A client process can die at any moment, and nobody tells the server: it
only sees a reply that never comes. So each round has a deadline: once the first reply is in,
the round waits at most ``straggler_timeout`` seconds for the others (a deadline relative to
the fastest client holds on a slow laptop as on a fast one), and at most
``first_reply_timeout`` seconds for the first. Clients that miss it are dropped from later
rounds, and the round averages the replies it has. When fewer than ``min_clients`` remain,
the server stops with a message saying so. The launcher has its own overall deadline too,
so nothing waits forever.

Flower is optional: ``import fedtutor.flower`` works without it, and every function that
needs it raises ``FlowerNotInstalled`` with the install command.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from fedtutor import data, federated, models, training

__all__ = [  # `flwr run` checks that client_app and server_app are listed here (it reads the source)
    "DeploymentConfig",
    "DeploymentError",
    "FlowerNotInstalled",
    "build_client_app",
    "build_server_app",
    "client_app",  # noqa: F822 - built on first access by __getattr__
    "fedavg_rounds",
    "flower_available",
    "free_port_block",
    "flwr_version",
    "local_update",
    "partition_for",
    "run_deployment",
    "server_app",  # noqa: F822 - built on first access by __getattr__
]
INSTALL_HINT = 'pip install "fedtutor[flower]"'
POLL_S = 0.2  # how often the server checks for replies and the launcher for progress
PARTITIONERS = ("iid", "shards", "dirichlet")
DATA_FOLDER_ENV = "FEDTUTOR_FLOWER_DATA"  # the launcher tells its processes where the IDX files are


class FlowerNotInstalled(ImportError):  # noqa: N818 - names the situation, like ModuleNotFoundError
    """Flower (``flwr``) is not installed; the message says how to install it."""


class DeploymentError(RuntimeError):
    """The deployment could not run or finish; the message says why and what to do."""


def flower_available() -> bool:
    """True when the ``flwr`` package can be imported."""
    return importlib.util.find_spec("flwr") is not None


def require_flower(feature: str = "This") -> None:
    """Raise ``FlowerNotInstalled`` (with the install command) unless ``flwr`` is importable."""
    if not flower_available():
        raise FlowerNotInstalled(
            f"{feature} needs Flower (the `flwr` package), which is not installed. "
            f'Fix: {INSTALL_HINT}  (or, from a checkout: pip install -e ".[flower]").'
        )


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class DeploymentConfig:
    """Everything a run needs. Server and clients receive it as Flower's *run config*."""

    clients: int = 2  # number of client processes (SuperNodes), each with its own partition
    rounds: int = 3  # FedAvg rounds
    model: str = "2nn"  # "2nn" or "cnn" (fedtutor.models)
    dataset: str = "mnist"  # "mnist" or "fashion-mnist" (fedtutor.data.load_tensors)
    train_examples: int = 0  # use a seeded random subset of this many training examples; 0 = all
    partition: str = "iid"  # "iid", "shards" or "dirichlet" (fedtutor.data)
    alpha: float = 0.5  # Dirichlet concentration, used when partition == "dirichlet"
    epochs: int = 1  # E: local epochs per round
    batch_size: int = 10  # B: local batch size; 0 = the whole partition as one batch
    lr: float = 0.05  # client SGD learning rate
    seed: int = 0
    min_clients: int = 1  # the server stops with an error when fewer clients remain
    straggler_timeout: float = 30.0  # after a round's first reply, seconds to wait for the others
    first_reply_timeout: float = 300.0  # seconds a round waits for its first reply
    threads_per_client: int = 1  # torch intra-op threads in each client process (no oversubscription)
    port: int = 9100  # SuperLink port; client i uses port + 1 + i for its local runtime API
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        def positive_int(name: str, minimum: int = 1) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")

        for name in ("clients", "rounds", "epochs", "min_clients", "threads_per_client"):
            positive_int(name)
        positive_int("batch_size", 0)
        positive_int("train_examples", 0)
        if self.dataset not in data.NORMALIZATION:
            raise ValueError(f"Unknown dataset {self.dataset!r}; choose one of {sorted(data.NORMALIZATION)}.")
        if self.min_clients > self.clients:
            raise ValueError(f"min_clients ({self.min_clients}) cannot exceed clients ({self.clients}).")
        if self.model.lower() not in models.MODELS:
            raise ValueError(f"Unknown model {self.model!r}; choose one of {sorted(models.MODELS)}.")
        if self.partition not in PARTITIONERS:
            raise ValueError(f"Unknown partition {self.partition!r}; choose one of {list(PARTITIONERS)}.")
        for name in ("lr", "alpha", "straggler_timeout", "first_reply_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}.")
        if not (isinstance(self.port, int) and self.port >= 1024 and self.port + self.clients <= 65535):
            raise ValueError(f"port must be an integer in 1024..{65535 - self.clients}, got {self.port!r}.")

    def to_run_config(self) -> dict[str, int | float | str]:
        """Flower's run config uses dashed keys: ``batch_size`` -> ``batch-size``."""
        return {f.name.replace("_", "-"): getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_run_config(cls, run_config: dict) -> DeploymentConfig:
        known = {f.name for f in fields(cls)}
        values = {k.replace("-", "_"): v for k, v in run_config.items() if k.replace("-", "_") in known}
        return cls(**values)


# ----------------------------------------------------------------------------- client side (pure torch)


def partition_for(config: DeploymentConfig, partition_id: int, num_partitions: int) -> federated.Client:
    """Client ``partition_id``'s share of the training set, the same split in every process."""
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition_id must be in 0..{num_partitions - 1}, got {partition_id}.")
    x, y = training_set(config)  # (N, 1, 28, 28), (N,)
    if config.partition == "iid":
        parts = data.iid(y, num_partitions, seed=config.seed)
    elif config.partition == "shards":
        parts = data.shards(y, num_partitions, seed=config.seed)
    else:
        parts = data.dirichlet(y, num_partitions, alpha=config.alpha, seed=config.seed)
    idx = parts[partition_id]
    return federated.Client(partition_id, x[idx], y[idx])


def training_set(config: DeploymentConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The training examples all clients share out: the whole set, or a seeded subset of it."""
    return _tensors(config.dataset, train=True, examples=config.train_examples or None, seed=config.seed)


def _tensors(
    dataset: str, train: bool, examples: int | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``data.load_tensors``, or, in a process the launcher started, straight from the folder it found:
    Flower starts a fresh process per message, and skipping the search saves each one time and memory."""
    folder = os.environ.get(DATA_FOLDER_ENV)
    if folder:
        return data.normalized_subset(*data.read_split(Path(folder), train), dataset, examples, seed)
    return data.load_tensors(dataset, train, examples, seed)


def initial_model(config: DeploymentConfig) -> torch.nn.Module:
    """The global model before round 1; seeded, so fedtutor's simulation can start from the same one."""
    torch.manual_seed(config.seed)
    return models.build_model(config.model)


def local_update(
    config: DeploymentConfig, global_state: dict[str, torch.Tensor], client: federated.Client, server_round: int
) -> tuple[dict[str, torch.Tensor], float]:
    """One client's work in round ``server_round``: E epochs of SGD from the global weights.

    Returns the new weights and the mean training loss. The batch order comes from the seed,
    the round and the client id, exactly as in ``fedtutor.federated``, so a deployment and a
    simulation with the same seed train the same way.
    """
    model = models.build_model(config.model)
    model.load_state_dict(global_state)
    strategy = federated.FedAvg(fraction=1.0, epochs=config.epochs, batch_size=config.batch_size or None, lr=config.lr)
    generator = torch.Generator().manual_seed(federated.derive_seed(config.seed, server_round, client.id))
    update = federated.train_client(model, client, strategy, generator)
    federated.set_flat_params(model, federated.flat_params(model) + update.delta)
    return model.state_dict(), update.train_loss


# ----------------------------------------------------------------------------- the Flower apps


def build_client_app(config: DeploymentConfig | None = None):
    """A Flower ``ClientApp`` running ``local_update``. ``config=None``: read it from the run config."""
    require_flower("The Flower ClientApp")
    from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        cfg = config or DeploymentConfig.from_run_config(dict(context.run_config))
        torch.set_num_threads(cfg.threads_per_client)  # several clients share the cores
        partition_id = int(context.node_config["partition-id"])
        client = partition_for(cfg, partition_id, int(context.node_config["num-partitions"]))
        server_round = int(msg.content["config"]["server-round"])
        new_state, train_loss = local_update(cfg, msg.content["arrays"].to_torch_state_dict(), client, server_round)
        content = RecordDict(
            {
                "arrays": ArrayRecord(new_state),
                "metrics": MetricRecord({"num-examples": len(client), "train-loss": train_loss}),
                "client": ConfigRecord({"partition-id": partition_id}),
            }
        )
        return Message(content=content, reply_to=msg)

    return app


def build_server_app(config: DeploymentConfig | None = None, progress_file: str | Path | None = None):
    """A Flower ``ServerApp`` running ``fedavg_rounds``. ``config=None``: read it from the run config."""
    require_flower("The Flower ServerApp")
    from flwr.app import Context
    from flwr.serverapp import Grid, ServerApp

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run_config = dict(context.run_config)
        cfg = config or DeploymentConfig.from_run_config(run_config)
        path = progress_file or run_config.get("progress-file") or None
        report = _progress_writer(Path(path) if path else None)
        try:
            fedavg_rounds(grid, cfg, report)
        except Exception as err:
            report({"error": f"{type(err).__name__}: {err}"})
            raise

    return app


def _progress_writer(path: Path | None) -> Callable[[dict], None]:
    """Append one JSON line per event; the launcher reads them (the ServerApp is another process)."""

    def report(event: dict) -> None:
        if path is not None:
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")

    return report


def fedavg_rounds(grid, config: DeploymentConfig, report: Callable[[dict], None] = lambda event: None) -> list[dict]:
    """The server's loop: for each round, send the global model to every live client, wait for the
    replies (until ``straggler_timeout`` s after the first one), average them with Flower's ``FedAvg``, evaluate.

    Returns one record per round (test accuracy and loss, clients used, clients lost).
    """
    from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
    from flwr.serverapp.strategy import FedAvg

    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_available_nodes=config.min_clients)
    model = initial_model(config)
    x_test, y_test = _tensors(config.dataset, train=False)
    arrays = ArrayRecord(model.state_dict())
    model_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    started = time.monotonic()
    live = _wait_for_clients(grid, config)
    names: dict[int, int] = {}  # node id -> partition id, learnt from replies
    records = []
    for t in range(1, config.rounds + 1):
        content = RecordDict({"arrays": arrays, "config": ConfigRecord({"server-round": t})})
        messages = [Message(content=content, message_type=MessageType.TRAIN, dst_node_id=n) for n in sorted(live)]
        replies = _send_and_receive(grid, messages, config.first_reply_timeout, config.straggler_timeout)
        ok = [r for r in replies if not r.has_error()]
        # Sorting by client id fixes the order of the floating-point sum: same seed, same numbers.
        ok.sort(key=lambda r: int(r.content["client"]["partition-id"]))
        names.update({r.metadata.src_node_id: int(r.content["client"]["partition-id"]) for r in ok})
        lost = live - {r.metadata.src_node_id for r in ok}
        live -= lost
        if len(ok) < config.min_clients:
            raise DeploymentError(
                f"round {t}: only {len(ok)} of {len(messages)} clients replied in time, "
                f"fewer than min_clients={config.min_clients}; stopping. Fix: restart the lost clients, "
                "or allow fewer with --min-clients."
            )
        arrays, metrics = strategy.aggregate_train(t, ok)
        model.load_state_dict(arrays.to_torch_state_dict())
        test_loss, test_acc = training.evaluate(model, x_test, y_test)
        record = {
            "round": t,
            "test_acc": test_acc,
            "test_loss": test_loss,
            "train_loss": float(metrics["train-loss"]),
            "clients": [int(r.content["client"]["partition-id"]) for r in ok],
            "dropped": sorted(names[n] for n in lost if n in names),  # client ids, where known
            "lost": len(lost),
            "bytes_up": len(ok) * model_bytes,
            "bytes_down": len(messages) * model_bytes,
            "skipped": False,
            "server_s": time.monotonic() - started,  # seconds since the server started, for the curious
        }
        records.append(record)
        report(record)
    report({"done": True})
    return records


def _wait_for_clients(grid, config: DeploymentConfig, timeout: float = 60.0) -> set[int]:
    """All ``config.clients`` connected, or as many as came within ``timeout`` (at least min_clients)."""
    deadline = time.monotonic() + timeout
    while len(nodes := set(grid.get_node_ids())) < config.clients and time.monotonic() < deadline:
        time.sleep(POLL_S)
    if len(nodes) < config.min_clients:
        raise DeploymentError(
            f"only {len(nodes)} of {config.clients} clients connected within {timeout:g} s "
            f"(min_clients={config.min_clients}). Fix: check the client logs."
        )
    return nodes


def _send_and_receive(grid, messages: list, first_timeout: float, straggler_timeout: float) -> list:
    """Push the messages, then collect replies until all arrived or the deadline passed: at most
    ``first_timeout`` s for the first reply, then at most ``straggler_timeout`` s for the rest.

    Flower's ``grid.send_and_receive`` has one fixed timeout and polls every 3 s; on one
    machine we can afford to ask five times a second.
    """
    pending = set(grid.push_messages(messages))
    replies: list = []
    deadline = time.monotonic() + first_timeout
    while pending and time.monotonic() < deadline:
        for reply in grid.pull_messages(pending):
            if not replies:  # the first reply sets the deadline for the stragglers
                deadline = min(deadline, time.monotonic() + straggler_timeout)
            replies.append(reply)
            pending.discard(reply.metadata.reply_to_message_id)
        if pending:
            time.sleep(POLL_S)
    return replies


def __getattr__(name: str):
    """``fedtutor.flower:client_app`` / ``:server_app``, the objects ``flwr run`` loads; built on
    first use so that importing this module never needs Flower."""
    builders = {"client_app": build_client_app, "server_app": build_server_app}
    if name in builders:
        globals()[name] = app = builders[name]()  # built once per process
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------- the launcher


APP_PYPROJECT = """\
# Written by fedtutor.flower for one run; `flwr run` reads it to know which apps to start.
[project]
name = "fedtutor-flower"
version = "1.0.0"
description = "fedtutor's MNIST FedAvg as a Flower app"
license = "MIT"
dependencies = []  # none: the apps run in the environment that is already installed

[tool.flwr.app]
publisher = "fedtutor"

[tool.flwr.app.components]
serverapp = "fedtutor.flower:server_app"
clientapp = "fedtutor.flower:client_app"

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
    ``--insecure`` (see notebook 09).
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


def draw_deployment(config: DeploymentConfig):
    """A picture of the processes of a deployment and what travels between them; returns the figure."""
    import matplotlib.pyplot as plt

    n = config.clients
    fig, ax = plt.subplots(figsize=(8, 1.6 + 0.9 * n))
    ax.set_axis_off()
    ax.set(xlim=(0, 10), ylim=(-0.6, n + 0.2))

    def box(x: float, y: float, text: str, color: str) -> None:
        ax.text(x, y, text, ha="center", va="center", fontsize=9, bbox={"boxstyle": "round", "fc": color, "ec": "gray"})

    server_y = (n - 1) / 2
    box(
        2.0,
        server_y,
        f"flower-superlink\n{config.host}:{config.port}\nServerApp: FedAvg +\ntest-set evaluation",
        "#dbe9f6",
    )
    for i in range(n):
        y = n - 1 - i
        box(8.0, y, f"flower-supernode {i}\nClientApp: local_update\npartition {i} of {n} (stays here)", "#fde2c8")
        ax.annotate(
            "", xy=(6.4, y + 0.12), xytext=(3.6, server_y + 0.12), arrowprops={"arrowstyle": "->", "color": "C0"}
        )
        ax.annotate(
            "", xy=(3.6, server_y - 0.12), xytext=(6.4, y - 0.12), arrowprops={"arrowstyle": "->", "color": "C1"}
        )
    ax.text(
        5.0,
        -0.45,
        "blue: global weights (ArrayRecord) down  ·  orange: new weights + num-examples up",
        ha="center",
        fontsize=8,
        color="dimgray",
    )
    ax.set_title(f"One machine, {n + 1} Flower processes (plus the helpers Flower starts for each app)")
    fig.tight_layout()
    return fig


class Deployment:
    """One SuperLink, ``config.clients`` SuperNodes and a submitted run, as child processes.

    Use it as a context manager: leaving the block (normally, by an exception or by Ctrl-C)
    stops every process it started, including the helpers Flower starts on its own.
    """

    def __init__(self, config: DeploymentConfig, workdir: Path, echo: Callable[[str], None] = print) -> None:
        require_flower("fedtutor's Flower deployment")
        self.config, self.workdir, self.echo = config, workdir, echo
        self.progress = workdir / "progress.jsonl"
        self.superlink: subprocess.Popen | None = None
        self.supernodes: list[subprocess.Popen] = []
        self._seen: dict[int, object] = {}  # pid -> psutil.Process: every process of the run, ever
        self.env = self._environment()

    # -- setup
    def _environment(self) -> dict[str, str]:
        scripts = Path(sysconfig.get_path("scripts"))
        if shutil.which("flower-superlink", path=str(scripts)) is None:
            raise DeploymentError(
                f"Flower's commands (flower-superlink, ...) are not in {scripts}. Fix: {INSTALL_HINT} "
                "in the environment that runs this Python."
            )
        env = dict(os.environ)
        # Flower starts helper processes by command name, so this environment's commands come first.
        env["PATH"] = str(scripts) + os.pathsep + env.get("PATH", "")
        package_root = str(Path(__file__).resolve().parent.parent)  # fedtutor importable in every process
        env["PYTHONPATH"] = package_root + os.pathsep + env.get("PYTHONPATH", "")
        env["FLWR_HOME"] = str(self.workdir / "flwr-home")
        env["FLWR_TELEMETRY_ENABLED"] = "0"  # no network calls from a classroom laptop
        env["FLWR_DISABLE_UPDATE_CHECK"] = "1"
        # Found once here, so every process reads the same files (see _tensors).
        if self.config.dataset == "mnist":
            env[DATA_FOLDER_ENV] = str(data.mnist_source().root / "MNIST" / "raw")
        else:
            env[DATA_FOLDER_ENV] = str(data.fashion_mnist_source().root / "FashionMNIST" / "raw")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _write_app(self) -> Path:
        app = self.workdir / "app"
        app.mkdir(parents=True, exist_ok=True)
        run_config = {**self.config.to_run_config(), "progress-file": str(self.progress)}
        lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in run_config.items())
        (app / "pyproject.toml").write_text(APP_PYPROJECT.format(config=lines), encoding="utf-8")
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
        # A new session: Ctrl-C in the terminal reaches only us, and we stop the children in order.
        kwargs = {"start_new_session": True} if os.name == "posix" else {}
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.workdir, **kwargs)
        log.close()
        return process

    def start(self) -> None:
        c = self.config
        self._check_ports_free()
        app = self._write_app()
        commands = deployment_commands(c, app)
        self.superlink = self._spawn("superlink", commands["superlink"])
        for i in range(c.clients):
            self.supernodes.append(self._spawn(f"client-{i}", commands[f"client-{i}"]))
        self._wait_for_port(c.host, c.port, timeout=60.0)
        submit = subprocess.run(
            commands["run"],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if submit.returncode != 0:
            raise DeploymentError(f"`flwr run` could not submit the app:\n{submit.stdout}{submit.stderr}")

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
            self._remember_processes()
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
        self._remember_processes()
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

    def _remember_processes(self) -> None:
        """Flower's helpers (SuperExec, app processes) run in their own sessions; note them while
        their parents live, so they can be stopped even after a parent is gone."""
        for process in [self.superlink, *self.supernodes]:
            if process is not None and process.poll() is None:
                for proc in self._tree(process.pid):
                    self._seen.setdefault(proc.pid, proc)

    def stop(self) -> None:
        import psutil

        self._remember_processes()
        # Clients first, then the server; psutil.Process remembers each start time, so a reused
        # pid is never signalled by mistake.
        ordered = [p for p in (*self.supernodes, self.superlink) if p is not None]
        for process in ordered:
            if process.poll() is None:
                _quietly(process.send_signal, signal.SIGTERM)
        _, alive = psutil.wait_procs([p for p in self._seen.values() if _running(p)], timeout=5)
        for proc in alive:
            _quietly(proc.kill)
        psutil.wait_procs(alive, timeout=5)
        for process in ordered:
            _quietly(process.wait, timeout=5)

    def pids(self) -> list[int]:
        """Every process of this run seen so far (for tests: all must be gone after ``stop``)."""
        return sorted(self._seen)

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
) -> federated.History:
    """Run FedAvg on Flower as real processes on this machine; returns the per-round ``History``.

    ``kill_client_after_round=k`` kills the last client's process after round k (a crash, to
    watch the server carry on). ``timeout``: overall limit in seconds (default: generous for
    the rounds asked). Logs of every process land in ``workdir`` (default: a temporary folder,
    removed afterwards).
    """
    config = config or DeploymentConfig()
    echo = echo or (lambda line: print(line, flush=True))  # flushed: the launcher is often piped
    require_flower("fedtutor's Flower deployment")
    if kill_client_after_round is not None and not 1 <= kill_client_after_round < config.rounds:
        raise ValueError(f"kill_client_after_round must be in 1..{config.rounds - 1}, got {kill_client_after_round}.")
    timeout = timeout or 120 + config.rounds * (config.first_reply_timeout + config.straggler_timeout)
    keep = workdir is not None
    folder = Path(workdir) if keep else Path(tempfile.mkdtemp(prefix="fedtutor-flower-"))
    folder.mkdir(parents=True, exist_ok=True)
    history = federated.History(label=f"Flower, {config.clients} client processes", config=asdict(config))
    started = time.monotonic()
    try:
        with Deployment(config, folder, echo) as deployment:
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
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def flwr_version() -> str:
    from importlib.metadata import version

    return version("flwr")
