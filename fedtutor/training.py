"""Ordinary (central) training: the loop every federated client runs on its own data.

``batches`` shuffles in-memory tensors with an explicit generator (so a seed fixes the order),
``train_epoch`` runs one pass, ``evaluate`` measures loss and accuracy, and ``fit`` ties them
together with ``tqdm.auto`` progress bars and a ``History`` that plots its learning curves.
Checkpoints are saved with ``torch.save`` and loaded with ``weights_only=True``, which refuses
to run arbitrary pickled code from a file someone sent you.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class PlainSGD:
    """``w <- w - lr * grad``: the same steps as ``torch.optim.SGD(params, lr)`` (no momentum,
    no weight decay), bit for bit, in a few lines.

    The federated engine's clients use it because building the first ``torch.optim`` optimizer
    in a process imports ``torch._dynamo`` (about 160 MB and a second): once per Flower client
    process, and in a small engine the largest memory cost after torch itself.
    """

    def __init__(self, params: Iterable[nn.Parameter], lr: float) -> None:
        self.params, self.lr = list(params), lr

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None  # like torch.optim's default: a fresh gradient, not a zeroed one

    @torch.no_grad()
    def step(self) -> None:
        for p in self.params:
            if p.grad is not None:
                p.add_(p.grad, alpha=-self.lr)


Optimizer = torch.optim.Optimizer | PlainSGD


def batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int | None, generator: torch.Generator | None = None
) -> Iterator[Batch]:
    """Mini-batches of (x, y); shuffled when a generator is given. ``batch_size=None``: one full batch."""
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}; they must match.")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer or None (full batch), got {batch_size}.")
    n = len(x)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    step = n if batch_size is None else batch_size
    for start in range(0, n, step):
        idx = order[start : start + step]
        yield x[idx], y[idx]


@contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """Temporarily set torch's (process-wide) intra-op thread count, restoring it afterwards.

    One thread wins when ops are tiny (one image) or when several clients train at once in
    threads: splitting each op across cores then costs more than it saves.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_epoch(
    model: nn.Module,
    data: Iterable[Batch],
    optimizer: Optimizer,
    loss_fn: LossFn = F.cross_entropy,
    progress: bool | tqdm = False,
) -> float:
    """One pass over ``data``; returns the mean training loss (weighted by batch size)."""
    model.train()
    total, count = 0.0, 0
    for xb, yb in tqdm(data, leave=False, desc="batches") if progress is True else data:
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(xb)
        count += len(xb)
    return total / max(count, 1)


def fast_copy(model: nn.Module) -> nn.Module:
    """A deep copy with its conv weights (O, I, kH, kW) stored channels-last (NHWC) in memory.

    CPU convolutions (oneDNN) pick faster kernels for that layout: the CNN evaluated in about
    half the time here, and trained 5-10% faster. The engine uses such copies for its own work
    (a client's local model, an evaluation). Models you hold keep the ordinary layout, because
    some torch utilities need it: ``.view(-1)`` and ``parameters_to_vector`` fail on a
    channels-last weight. Values are the same; float sums may round differently in the last bits.
    """
    return copy.deepcopy(model).to(memory_format=torch.channels_last)  # only 4-D tensors change


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 100) -> torch.Tensor:
    """Logits for every example, computed in chunks to bound memory. (N, ...) -> (N, classes)

    100 at a time: for the CNN that was as fast as any size measured here, while chunks of
    1,000 ran up to 2x slower and briefly took hundreds of MB more (a convolution's working
    buffers grow with the chunk). A model with convolutions runs through a ``fast_copy``.
    """
    model.eval()
    if any(p.dim() == 4 for p in model.parameters()):
        model = fast_copy(model)
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 100) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy in [0, 1]) of ``model`` on ``(x, y)``."""
    logits = predict(model, x, batch_size)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


@dataclass
class History:
    """One record per epoch (or round): ``{"epoch": 1, "train_loss": ..., "test_loss": ..., "test_acc": ...}``."""

    records: list[dict[str, float]] = field(default_factory=list)

    def append(self, **values: float) -> None:
        self.records.append(values)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: str) -> list[float]:
        """``history["test_acc"]`` is the column as a list."""
        return [r[key] for r in self.records]

    @property
    def final(self) -> dict[str, float]:
        if not self.records:
            raise ValueError("History is empty: train for at least one epoch first.")
        return self.records[-1]

    def plot(self, title: str = "Learning curves"):
        """Loss (train and test) and test accuracy against epochs; returns the figure."""
        from fedtutor.plots import learning_curves

        return learning_curves(self, title=title)


def fit(
    model: nn.Module,
    train: Batch,
    test: Batch,
    epochs: int,
    lr: float = 0.05,
    batch_size: int = 64,
    seed: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    progress: bool = True,
) -> History:
    """Train ``model`` on in-memory ``train = (x, y)`` with SGD, evaluating on ``test`` after each epoch."""
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    history = History()
    bar = tqdm(range(1, epochs + 1), desc="epochs", disable=not progress)
    for epoch in bar:
        train_loss = train_epoch(model, batches(*train, batch_size, generator), optimizer)
        test_loss, test_acc = evaluate(model, *test)
        history.append(epoch=epoch, train_loss=train_loss, test_loss=test_loss, test_acc=test_acc)
        bar.set_postfix(loss=f"{train_loss:.3f}", test_acc=f"{test_acc:.2%}")
    return history


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, classes: int = 10) -> torch.Tensor:
    """(classes, classes) counts: row = true label, column = predicted label."""
    return torch.bincount(labels * classes + predictions, minlength=classes * classes).reshape(classes, classes)


def save_checkpoint(model: nn.Module, path: str | Path, overwrite: bool = False) -> Path:
    """Save the model's weights; refuses to replace an existing file unless ``overwrite=True``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} already exists; not overwriting it. Fix: choose another name, or pass overwrite=True."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights saved by ``save_checkpoint`` into ``model`` (same architecture), safely."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint at {path}. Fix: check the path, or save one first.")
    state = torch.load(path, weights_only=True)  # plain tensors only: no code runs on load
    mine = model.state_dict()
    mismatched = [k for k in mine if k not in state or state[k].shape != mine[k].shape]
    if mismatched or set(state) - set(mine):
        raise ValueError(
            f"{path} was saved from a different architecture than {type(model).__name__} "
            f"(mismatched: {(mismatched or sorted(set(state) - set(mine)))[:3]}...). "
            "Fix: build the same model class that saved it."
        )
    model.load_state_dict(state)
    return model
