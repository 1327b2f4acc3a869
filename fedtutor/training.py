"""Ordinary (central) training: the loop every federated client runs on its own data.

``batches`` shuffles in-memory tensors with an explicit generator (so a seed fixes the order),
``train_epoch`` runs one pass, ``evaluate`` measures loss and accuracy, and ``fit`` ties them
together with ``tqdm.auto`` progress bars and a ``History`` that plots its learning curves.
Checkpoints are saved with ``torch.save`` and loaded with ``weights_only=True``, which refuses
to run arbitrary pickled code from a file someone sent you.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

__all__ = ["History", "batches", "confusion_matrix", "evaluate", "fit", "load_checkpoint", "predict"]
__all__ += ["save_checkpoint", "train_epoch"]

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Optimizer = torch.optim.Optimizer  # anything with zero_grad() and step() will do


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


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Logits for every example, in batches so memory stays bounded. (N, ...) -> (N, classes)"""
    model.eval()
    return torch.cat([model(xb) for xb in x.split(batch_size)])


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy in [0, 1]) of ``model`` on ``(x, y)``."""
    logits = predict(model, x, batch_size)  # (N, classes)
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
