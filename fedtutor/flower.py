"""The course's model and client training on Flower, as real server and client processes.

The same code as ``fedtutor.federated`` runs on `Flower <https://flower.ai>`_
(``pip install "fedtutor[flower]"``) as separate processes talking over the network:

- **client side**: ``local_update`` trains a copy of the global model on one partition of MNIST
  with ``federated.train_client``, the very function the in-process engine calls; the
  ``ClientApp`` (``client_app``) only unpacks the message and packs the reply.
- **server side**: the ``ServerApp`` (``server_app``) runs ``fedavg_rounds``: one training
  message per connected client, replies collected with a per-round deadline, aggregated by
  Flower's own ``flwr.serverapp.strategy.FedAvg`` (weighted by examples), then evaluated.
- the processes (a ``flower-superlink``, one ``flower-supernode`` per client, ``flwr run``) are
  started and stopped by ``fedtutor.course.launcher``: course machinery, not lesson material.

Fault tolerance: a crashed client is only a reply that never comes. Each round goes to the clients
connected then, waits at most ``first_reply_timeout`` s for the first reply and ``straggler_timeout``
s more for the rest; below ``min_clients`` replies the server stops, saying so.
``import fedtutor.flower`` works without Flower; what needs it raises ``FlowerNotInstalled``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from fedtutor import data, federated, models, speedups, training

# `flwr run` looks for client_app and server_app in the first `__all__ = [...]` (it reads the source);
# both are built on first access, by __getattr__ at the end of this module.
__all__ = ["DeploymentConfig", "DeploymentError", "FlowerNotInstalled", "client_app", "server_app"]  # noqa: F822
__all__ += ["build_client_app", "build_server_app", "fedavg_rounds", "flower_available", "local_update"]
__all__ += ["partition_for", "progress_writer"]
INSTALL_HINT = 'pip install "fedtutor[flower]"'
POLL_S = 0.2  # how often the server checks for replies and the launcher for progress
CONNECT_S = 60.0  # how long the server waits for all clients to connect before round 1
PARTITIONERS = ("iid", "shards", "dirichlet")
DATA_FOLDER_ENV = "FEDTUTOR_FLOWER_DATA"  # the launcher tells its processes where the IDX files are
RUN_ENV = "FEDTUTOR_FLOWER_RUN"  # set in every process of a run (a token the launcher uses to find them all)


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
        if self.min_clients > self.clients:
            raise ValueError(f"min_clients ({self.min_clients}) cannot exceed clients ({self.clients}).")
        if self.model.lower() not in models.MODELS:
            raise ValueError(f"Unknown model {self.model!r}; choose one of {sorted(models.MODELS)}.")
        if self.partition not in PARTITIONERS:
            raise ValueError(f"Unknown partition {self.partition!r}; choose one of {list(PARTITIONERS)}.")
        for name in ("lr", "alpha", "straggler_timeout", "first_reply_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}.")
            if name in ("lr", "alpha") and not math.isfinite(value):  # inf trains to NaN in every client
                raise ValueError(f"{name} must be a finite number, got {value!r}.")
        if not (isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed < 2**63):
            raise ValueError(f"seed must be a whole number from 0 to 2**63 - 1 (torch's range), got {self.seed!r}.")
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
    # All clients share out the same training examples: the whole set, or a seeded subset of it.
    x, y = load_split(train=True, examples=config.train_examples or None, seed=config.seed)  # (N, 1, 28, 28), (N,)
    if config.partition == "iid":
        parts = data.iid(y, num_partitions, seed=config.seed)
    elif config.partition == "shards":
        parts = data.shards(y, num_partitions, seed=config.seed)
    else:
        parts = data.dirichlet(y, num_partitions, alpha=config.alpha, seed=config.seed)
    idx = parts[partition_id]
    return federated.Client(partition_id, x[idx], y[idx])


def load_split(train: bool, examples: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``data.load_tensors``, or, in a process the launcher started, straight from the folder it found:
    Flower starts a fresh process per message, and skipping the search saves each one time and memory."""
    folder = os.environ.get(DATA_FOLDER_ENV)
    if folder:
        return data.normalized_subset(*data.read_split(Path(folder), train), examples=examples, seed=seed)
    return data.load_tensors(train=train, examples=examples, seed=seed)


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
    # PlainSGD: each client process is spared torch.optim's import of torch._dynamo (fedtutor.speedups)
    update = federated.train_client(model, client, strategy, generator, speedups.PlainSGD)
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
                "metrics": MetricRecord({"num-examples": len(client), "train-loss": train_loss, "lr": cfg.lr}),
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
        report = progress_writer(path)
        try:
            fedavg_rounds(grid, cfg, report)
        except Exception as err:
            report({"error": f"{type(err).__name__}: {err}"})
            raise

    return app


def progress_writer(path: str | Path | None) -> Callable[[dict], None]:
    """Append one JSON line per event; the launcher reads them (the ServerApp is another process)."""

    def report(event: dict) -> None:
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")

    return report


def fedavg_rounds(
    grid,
    config: DeploymentConfig,
    report: Callable[[dict], None] = lambda event: None,
    round_config: Callable[[int, DeploymentConfig], dict] | None = None,
) -> list[dict]:
    """The server's loop: for each round, send the global model (and ``round_config(t, config)``, a dict of
    settings for round t) to every connected client, wait for the
    replies (until ``straggler_timeout`` s after the first one), average them with Flower's ``FedAvg``, evaluate.

    The grid is asked who is connected every round: a client that joins late takes part from the next
    round, one that left is not waited for. One that missed a round sits out the next one (a crashed
    SuperNode stays listed until its heartbeat times out, and waiting for it every round would hold
    everyone up), then is asked again: a laptop that woke up keeps its node id.
    Returns one record per round (test accuracy and loss, clients used, clients lost).
    """
    from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
    from flwr.serverapp.strategy import FedAvg

    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_available_nodes=config.min_clients)
    model = initial_model(config)
    x_test, y_test = load_split(train=False)
    arrays = ArrayRecord(model.state_dict())
    model_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    started = time.monotonic()
    _wait_for_clients(grid, config)
    names: dict[int, int] = {}  # node id -> partition id, learnt from replies
    sitting_out: set[int] = set()  # nodes that missed the last round
    records = []
    for t in range(1, config.rounds + 1):
        asked = sorted(set(grid.get_node_ids()) - sitting_out)
        sent = {**(round_config(t, config) if round_config else {}), "server-round": t}
        content = RecordDict({"arrays": arrays, "config": ConfigRecord(sent)})
        messages = [Message(content=content, message_type=MessageType.TRAIN, dst_node_id=n) for n in asked]
        replies = _send_and_receive(grid, messages, config.first_reply_timeout, config.straggler_timeout)
        ok = [r for r in replies if not r.has_error()]
        # Sorting by client id fixes the order of the floating-point sum: same seed, same numbers.
        ok.sort(key=lambda r: int(r.content["client"]["partition-id"]))
        names.update({r.metadata.src_node_id: int(r.content["client"]["partition-id"]) for r in ok})
        lost = set(asked) - {r.metadata.src_node_id for r in ok}
        sitting_out = lost
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
            "client_lr": [r.content["metrics"].get("lr") for r in ok],  # what each client says it used
            "round_config": sent,
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


def _wait_for_clients(grid, config: DeploymentConfig) -> None:
    """Before round 1: all ``config.clients`` connected, or those that came within ``CONNECT_S`` s."""
    deadline = time.monotonic() + CONNECT_S
    while len(nodes := set(grid.get_node_ids())) < config.clients and time.monotonic() < deadline:
        time.sleep(POLL_S)
    if len(nodes) < config.min_clients:
        raise DeploymentError(
            f"only {len(nodes)} of {config.clients} clients connected within {CONNECT_S:g} s "
            f"(min_clients={config.min_clients}). Fix: check the client logs."
        )


def _send_and_receive(grid, messages: list, first_timeout: float, straggler_timeout: float) -> list:
    """Push the messages, then collect replies until all arrived or the deadline passed: at most
    ``first_timeout`` s for the first reply, then at most ``straggler_timeout`` s for the rest.

    Flower's ``grid.send_and_receive`` has one fixed timeout and polls every 3 s; on one
    machine we can afford to ask five times a second.
    """
    pending = set(grid.push_messages(messages))
    replies: list = []
    answered, deadline = False, time.monotonic() + first_timeout
    while pending and time.monotonic() < deadline:
        for reply in grid.pull_messages(pending):
            # The first *answer* starts the stragglers' clock; an error (a node that just left) comes
            # back at once and says nothing about how long training takes.
            if not answered and not reply.has_error():
                answered, deadline = True, min(deadline, time.monotonic() + straggler_timeout)
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
