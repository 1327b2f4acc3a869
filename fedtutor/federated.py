"""Federated averaging (McMahan et al. 2017) on in-memory tensors: clients, strategies, rounds.

- ``Client``: one data holder, an id and its own tensors ``x`` (n, 1, 28, 28) / ``y`` (n,);
  ``make_clients(x, y, parts)`` builds them from a partition (``data.iid/shards/dirichlet``).
- ``FedAvg``: the *configuration* of a round (its fields: the paper's C, E and B, the client lr,
  server learning rate and momentum, client dropout). ``FedSGD`` is FedAvg with E=1, B=None: one
  gradient step on the union of the clients' data. ``FedProx(mu=...)`` adds ``mu/2 * ||w - w_global||^2``
  to each client's loss.
- ``train_client``: one client's local training, in plain PyTorch (``copy.deepcopy``,
  ``torch.optim.SGD``, a loop). The engine passes it the faster equivalents of
  ``fedtutor.speedups`` and trains a round's clients side by side in threads.
- ``Server``: keeps the global model; ``server.round(t)`` samples, trains, aggregates, steps.
- ``run_federated(...)``: the one-call entry point; returns a ``RoundHistory`` (per round:
  accuracy, loss, clients used, bytes up/down) with ``.plot()``, ``.rounds_to()``, ``.save_json()``.

**The aggregation hook.** Every update reaches the server as a flat vector
``delta = w_client - w_global`` (P,), in the order of ``model.parameters()``. The server calls
``strategy.aggregate(deltas, weights) -> (P,)`` with the deltas of the clients that returned, in
increasing client id, and their numbers of examples as float64 ``weights``; the default is the
weighted mean (``weighted_average``). Pass ``aggregator=callable`` with the same signature (or
subclass ``FedAvg``) to clip, mask, add noise or use a robust mean. The server then applies
``w <- w + server_lr * v`` with ``v <- server_momentum * v + aggregate(...)``.

**Determinism.** Round ``t`` samples clients with a generator seeded by ``(seed, t)``; client
``k`` shuffles its batches with one seeded by ``(seed, t, k)``; updates are summed in client-id
order. So a seed fixes every number, and clients trained in threads give the sequential result
bit for bit (when the sequential run also uses one intra-op thread: with more, torch splits float
sums differently and the last bits can differ).
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from fedtutor import speedups, training

__all__ = ["Client", "FedAvg", "FedProx", "FedSGD", "RoundHistory", "Server", "derive_seed", "flat_params"]
__all__ += ["make_clients", "run_federated", "set_flat_params", "train_client", "weighted_average"]

Aggregator = Callable[[list[torch.Tensor], torch.Tensor], torch.Tensor]
BYTES_PER_FLOAT = 4  # float32 parameters on the wire


# ----------------------------------------------------------------------------- clients


@dataclass
class Client:
    """A data holder: its examples never leave it, only model updates do."""

    id: int
    x: torch.Tensor  # (n, 1, 28, 28)
    y: torch.Tensor  # (n,)

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        labels = sorted(set(self.y.tolist()))
        return f"Client(id={self.id}, n={len(self)}, labels={labels})"


def make_clients(x: torch.Tensor, y: torch.Tensor, parts: Sequence[torch.Tensor]) -> list[Client]:
    """One ``Client`` per index tensor in ``parts`` (e.g. ``data.iid(y, 100)``), holding copies."""
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}; they must match.")
    if len(parts) == 0:
        raise ValueError("parts is empty: pass one index tensor per client, e.g. fedtutor.data.iid(y, 10).")
    return [Client(k, x[idx], y[idx]) for k, idx in enumerate(parts)]


# ----------------------------------------------------------------------------- strategies


def weighted_average(deltas: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """``sum_k w_k * delta_k / sum_k w_k``: FedAvg's aggregate. deltas: K x (P,), weights: (K,)."""
    shares = (weights.double() / weights.double().sum()).tolist()  # (K,) python floats, summing to 1
    total = torch.zeros_like(deltas[0])
    for share, delta in zip(shares, deltas, strict=True):  # a fixed order: the same sum every time
        total.add_(delta, alpha=share)  # in place: no (K, P) copy of every update
    return total


@dataclass
class FedAvg:
    """Federated averaging, configured as in McMahan et al. 2017 (see the module docstring)."""

    fraction: float = 0.1  # C: share of the clients asked each round (at least one)
    epochs: int = 5  # E: local passes over the client's data
    batch_size: int | None = 10  # B: local batch size; None = full batch (B = infinity)
    lr: float = 0.1  # client SGD learning rate
    mu: float = 0.0  # FedProx proximal strength; 0 = plain FedAvg
    server_lr: float = 1.0
    server_momentum: float = 0.0  # 0.9 gives "FedAvgM" (Hsu et al. 2019)
    dropout: float = 0.0  # probability that a selected client does not return its update
    aggregator: Aggregator | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check_range("fraction", self.fraction, 0.0, 1.0, low_open=True)
        _check_range("dropout", self.dropout, 0.0, 1.0, high_open=True)
        _check_range("server_momentum", self.server_momentum, 0.0, 1.0, high_open=True)
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ValueError(f"epochs (E) must be a positive integer, got {self.epochs!r}.")
        if self.batch_size is not None and not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ValueError(
                f"batch_size (B) must be a positive integer or None (full batch), got {self.batch_size!r}."
            )
        for name in ("lr", "server_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}.")
        if self.mu < 0:
            raise ValueError(f"mu (FedProx) must be >= 0, got {self.mu!r}.")

    def aggregate(self, deltas: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
        """The hook: combine the returned updates (P,) into one (P,). Default: weighted mean."""
        if self.aggregator is not None:
            return self.aggregator(deltas, weights)
        return weighted_average(deltas, weights)

    def num_selected(self, num_clients: int) -> int:
        """m = max(C * K, 1) clients per round, as in the paper."""
        return max(1, round(self.fraction * num_clients))

    def describe(self) -> str:
        b = "inf" if self.batch_size is None else self.batch_size
        extras = "".join(
            f", {name}={getattr(self, name)}" for name in ("mu", "server_momentum", "dropout") if getattr(self, name)
        )
        return f"{type(self).__name__}(C={self.fraction}, E={self.epochs}, B={b}, lr={self.lr}{extras})"


def FedSGD(fraction: float = 0.1, lr: float = 0.1, **kwargs) -> FedAvg:  # noqa: N802 - reads as a class
    """FedSGD is FedAvg with one local epoch on one full batch: each client takes one gradient step."""
    return FedAvg(fraction=fraction, epochs=1, batch_size=None, lr=lr, **kwargs)


def FedProx(mu: float = 0.01, **kwargs) -> FedAvg:  # noqa: N802 - reads as a class
    """FedAvg whose clients minimise ``loss + mu/2 * ||w - w_global||^2`` (Li et al. 2020)."""
    return FedAvg(mu=mu, **kwargs)


def _check_range(name: str, value: float, low: float, high: float, low_open=False, high_open=False) -> None:
    ok = isinstance(value, (int, float)) and not math.isnan(value)
    ok = ok and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}.")


# ----------------------------------------------------------------------------- local training


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from a tuple like (seed, round, client): distinct tuples, unrelated streams."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def flat_params(model: nn.Module) -> torch.Tensor:
    """All parameters as one flat vector (P,), detached copy."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def set_flat_params(model: nn.Module, vector: torch.Tensor) -> None:
    """Write a flat vector (P,) back into the model's parameters, in place.

    Copies into each parameter (unlike ``vector_to_parameters``, which swaps in views of the
    vector), so the parameters stay the same tensors, with their own memory layout, and an
    optimizer holding them keeps working.
    """
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    if vector.shape != (total,):
        raise ValueError(
            f"vector has shape {tuple(vector.shape)}, the model has {total} parameters; "
            "pass a flat vector of that length, e.g. from flat_params(model)."
        )
    with torch.no_grad():
        for p, chunk in zip(params, vector.split([p.numel() for p in params]), strict=True):
            p.copy_(chunk.view_as(p))


@dataclass
class ClientUpdate:
    client_id: int
    delta: torch.Tensor  # (P,) = w_client - w_global
    num_examples: int
    train_loss: float


def train_client(
    global_model: nn.Module,
    client: Client,
    strategy: FedAvg,
    generator: torch.Generator,
    make_optimizer: Callable[..., training.Optimizer] = torch.optim.SGD,
    copy_model: Callable[[nn.Module], nn.Module] = copy.deepcopy,
) -> ClientUpdate:
    """Copy the global model, run E local epochs of SGD on the client's data, return the change.

    ``make_optimizer`` and ``copy_model`` let the engine pass faster equivalents (``fedtutor.speedups``).
    """
    model = copy_model(global_model)  # the client's own copy: the global model stays as it is
    start = flat_params(global_model)
    optimizer = make_optimizer(model.parameters(), lr=strategy.lr)
    loss_fn = _proximal_loss(model, global_model, strategy.mu) if strategy.mu > 0 else F.cross_entropy
    losses = [
        training.train_epoch(
            model, training.batches(client.x, client.y, strategy.batch_size, generator), optimizer, loss_fn
        )
        for _ in range(strategy.epochs)
    ]
    return ClientUpdate(client.id, flat_params(model) - start, len(client), sum(losses) / len(losses))


def _proximal_loss(model: nn.Module, anchor: nn.Module, mu: float) -> training.LossFn:
    """FedProx: cross-entropy plus mu/2 * ||w - w_global||^2, which keeps clients near the global model."""
    anchors = [p.detach() for p in anchor.parameters()]

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        proximal = sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchors, strict=True))
        return F.cross_entropy(logits, target) + 0.5 * mu * proximal

    return loss


# ----------------------------------------------------------------------------- server


class Server:
    """The coordinator: keeps the global model, samples clients, averages their updates."""

    def __init__(
        self, model: nn.Module, clients: Sequence[Client], strategy: FedAvg, seed: int = 0, workers: int | None = None
    ) -> None:
        if not clients:
            raise ValueError("No clients: pass at least one Client (see make_clients).")
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers must be a positive integer or None (automatic), got {workers!r}.")
        self.model, self.clients, self.strategy, self.seed = model, list(clients), strategy, seed
        # None: one client thread per core torch would use (1 = sequential)
        self.workers = workers or max(1, min(torch.get_num_threads(), os.cpu_count() or 1))
        self.velocity = torch.zeros_like(flat_params(model))  # server momentum buffer
        self.model_bytes = self.velocity.numel() * BYTES_PER_FLOAT

    def sample(self, t: int) -> tuple[list[int], list[int]]:
        """(selected, returned) client ids for round t, both sorted; decided by (seed, t) only.

        A selected client returns unless it drops out (probability ``dropout``) or holds no data
        (possible with a skewed Dirichlet split); either way it has downloaded the model.
        """
        generator = torch.Generator().manual_seed(derive_seed(self.seed, t))
        m = self.strategy.num_selected(len(self.clients))
        selected = sorted(torch.randperm(len(self.clients), generator=generator)[:m].tolist())
        survives = torch.rand(len(selected), generator=generator) >= self.strategy.dropout  # (m,)
        returned = [k for k, ok in zip(selected, survives.tolist(), strict=True) if ok and len(self.clients[k]) > 0]
        return selected, returned

    def train_clients(self, t: int, ids: list[int]) -> list[ClientUpdate]:
        """Local training of the given clients, in threads when more than one worker is allowed."""

        def work(k: int) -> ClientUpdate:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, t, k))
            client = self.clients[k]
            return train_client(self.model, client, self.strategy, generator, speedups.PlainSGD, speedups.fast_copy)

        workers = min(self.workers, len(ids))
        if workers <= 1:
            return [work(k) for k in ids]
        with speedups.intra_op_threads(1), ThreadPoolExecutor(workers) as pool:
            return list(pool.map(work, ids))  # map keeps the order of ids: aggregation order is fixed

    def round(self, t: int) -> dict:
        """Sample, train, aggregate, step; returns the round's record (``run_federated`` adds the test scores)."""
        selected, returned = self.sample(t)
        updates = self.train_clients(t, returned)
        record = {
            "round": t,
            "train_loss": None,
            "clients": returned,
            "dropped": [k for k in selected if k not in returned],
            "bytes_up": len(updates) * self.model_bytes,  # only the clients that returned upload
            "bytes_down": len(selected) * self.model_bytes,  # every selected client downloads the model
            "skipped": not updates,
        }
        if not updates:  # nobody came back: keep the model as it is
            return record
        weights = torch.tensor([u.num_examples for u in updates], dtype=torch.float64)  # (K,)
        average = self.strategy.aggregate([u.delta for u in updates], weights)  # (P,)
        self.velocity = self.strategy.server_momentum * self.velocity + average
        set_flat_params(self.model, flat_params(self.model) + self.strategy.server_lr * self.velocity)
        record["train_loss"] = float(sum(u.train_loss * u.num_examples for u in updates) / weights.sum())
        return record


# ----------------------------------------------------------------------------- history


class RoundHistory(training.History):
    """One record per round: round, test_acc, test_loss, train_loss, clients, bytes_up, bytes_down, ...

    ``history["test_acc"]`` is a column; ``rounds_to(0.9)`` the first round reaching 90%.
    """

    def __init__(self, records: list[dict] | None = None, label: str = "", config: dict | None = None) -> None:
        super().__init__(records or [])
        self.label, self.config = label, config or {}

    def rounds_to(self, target: float) -> int | None:
        """First round whose test accuracy is at least ``target`` (in [0, 1]); None if never reached."""
        if not 0 < target <= 1:
            raise ValueError(f"target is an accuracy in (0, 1], e.g. 0.9 for 90%; got {target!r}.")
        return next((r["round"] for r in self.records if r["test_acc"] >= target), None)

    @property
    def megabytes(self) -> float:
        """Total traffic, up plus down, in MB (10^6 bytes)."""
        return sum(r["bytes_up"] + r["bytes_down"] for r in self.records) / 1e6

    def cumulative_mb(self) -> list[float]:
        """Traffic so far after each round, in MB: the x axis of ``plot(x="mb")``."""
        return (np.cumsum([r["bytes_up"] + r["bytes_down"] for r in self.records]) / 1e6).tolist()

    def plot(self, title: str = "", target: float | None = None, x: str = "round"):
        """Test accuracy against rounds (``x="round"``) or megabytes communicated (``x="mb"``)."""
        from fedtutor.plots import accuracy_curves

        return accuracy_curves([self], title=title or self.label or "Federated training", target=target, x=x)

    def save_json(self, path: str | Path, overwrite: bool = False) -> Path:
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} already exists; not overwriting it. Fix: choose another name.")
        everything = {"label": self.label, "config": self.config, "rounds": self.records}
        path.write_text(json.dumps(_finite(everything), indent=1, allow_nan=False))
        return path

    def __repr__(self) -> str:
        if not self.records:
            return f"RoundHistory({self.label!r}, no rounds)"
        last = self.records[-1]
        return (
            f"RoundHistory({self.label!r}, {len(self)} rounds, final test accuracy {last['test_acc']:.2%}, "
            f"{self.megabytes:.1f} MB communicated)"
        )


def strategy_config(strategy: FedAvg) -> dict:
    """The strategy's settings as JSON-friendly values (anything else, e.g. an aggregator, by name)."""
    config = {"strategy": type(strategy).__name__}
    for f in fields(strategy):
        value = getattr(strategy, f.name)
        plain = value is None or isinstance(value, (bool, int, float, str))
        config[f.name] = value if plain else type(value).__name__
    return config


def _finite(value):
    """JSON has no NaN or infinity: a diverged loss is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


# ----------------------------------------------------------------------------- the entry point


def run_federated(
    model: nn.Module,
    clients: Sequence[Client],
    test: tuple[torch.Tensor, torch.Tensor],
    strategy: FedAvg | None = None,
    rounds: int = 10,
    seed: int = 0,
    workers: int | None = None,
    target: float | None = None,
    stop_at_target: bool = False,
    progress: bool = True,
    live: bool | None = None,
    label: str = "",
    on_round: Callable[[dict], None] | None = None,
) -> RoundHistory:
    """Train ``model`` (in place) with ``strategy`` for ``rounds`` rounds; returns the ``RoundHistory``.

    ``test = (x_test, y_test)`` is evaluated after every round. ``workers``: client threads
    (None: one per core; 1: sequential). ``live``: redraw the accuracy curve after every
    round in Jupyter (None: when running inside a Jupyter kernel). ``stop_at_target``: stop
    once the test accuracy reaches ``target``. ``on_round(record)`` is called after each round.
    """
    if not (isinstance(rounds, int) and rounds >= 1):
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}.")
    strategy = strategy or FedAvg()
    server = Server(model, clients, strategy, seed, workers)
    label = label or strategy.describe()
    config = {**strategy_config(strategy), "clients": len(clients), "rounds": rounds, "seed": seed}
    history = RoundHistory(label=label, config=config)
    from fedtutor.widgets import LivePlot, in_jupyter

    plot = LivePlot(history, target=target) if (live if live is not None else in_jupyter()) else None
    desc = label if len(label) <= 40 else "rounds"  # a long description would squeeze the bar
    bar = tqdm(range(1, rounds + 1), desc=desc, unit="round", disable=not progress, leave=True)
    for t in bar:
        record = server.round(t)
        test_loss, test_acc = speedups.evaluate(model, *test)
        record |= {"test_acc": test_acc, "test_loss": test_loss}
        history.records.append(record)
        if record["skipped"]:
            tqdm.write(f"round {t}: none of the {len(record['dropped'])} selected clients returned; model kept as is")
        bar.set_postfix(acc=f"{test_acc:.2%}", clients=len(record["clients"]))
        if plot is not None:
            plot.update()
        if on_round is not None:
            on_round(record)
        if stop_at_target and target is not None and test_acc >= target:
            break
    if plot is not None:
        plot.close()
    return history
