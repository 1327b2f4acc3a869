"""Figures the notebooks draw, kept here so each notebook cell stays one line.

Every function returns the matplotlib ``Figure`` (so tests and notebooks can inspect or save
it) and draws with sizes and fonts that read well on a projector.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch

from fedtutor.data import denormalize

plt.rcParams.update({"figure.dpi": 100, "font.size": 11, "axes.spines.top": False, "axes.spines.right": False})


def image_grid(
    images: torch.Tensor,
    titles: Sequence[str] | None = None,
    columns: int = 10,
    title: str = "",
    dataset: str = "mnist",
):
    """Show normalized images (N, 1, 28, 28) in a grid, each with an optional caption."""
    n = len(images)
    rows = max(1, -(-n // columns))  # ceil division
    fig, axes = plt.subplots(rows, columns, figsize=(1.2 * columns, 1.35 * rows + (0.4 if title else 0)))
    for i, ax in enumerate(axes.flat if hasattr(axes, "flat") else [axes]):
        ax.axis("off")
        if i < n:
            ax.imshow(denormalize(images[i], dataset).squeeze(0), cmap="gray_r", vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def learning_curves(history, title: str = "Learning curves"):
    """Train/test loss and test accuracy per epoch from a ``training.History``."""
    epochs = history["epoch"]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(epochs, history["train_loss"], "o-", label="train")
    ax_loss.plot(epochs, history["test_loss"], "s--", label="test")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [100 * a for a in history["test_acc"]], "o-", color="C2")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="Test accuracy")
    ax_acc.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion(matrix: torch.Tensor, title: str = "Confusion matrix (test set)"):
    """A confusion matrix as a heat map, with the counts written in each cell."""
    classes = matrix.shape[0]
    fig, ax = plt.subplots(figsize=(6.2, 5.4))
    im = ax.imshow(matrix, cmap="Blues")
    threshold = matrix.max().item() / 2
    for i in range(classes):
        for j in range(classes):
            value = int(matrix[i, j])
            color = "white" if value > threshold else "black"
            ax.text(j, i, str(value), ha="center", va="center", fontsize=8, color=color)
    ax.set(xticks=range(classes), yticks=range(classes), xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def line(xs: Sequence[float], ys: Sequence[float], xlabel: str, ylabel: str, title: str = "", **style):
    """One curve, labelled: for a loss curve or any quick y-against-x."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(xs, ys, **style)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
