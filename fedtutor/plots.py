"""Figures the notebooks draw, kept here so each notebook cell stays one line.

Every function returns the matplotlib ``Figure`` (so tests and notebooks can inspect or save
it) and draws with sizes and fonts that read well on a projector.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch

from fedtutor.data import denormalize

__all__ = ["accuracy_curves", "confusion", "draw_deployment", "histograms", "image_grid", "label_distribution"]
__all__ += ["draw_workers", "learning_curves", "line", "message_log", "privacy_tradeoff"]

plt.rcParams.update({"figure.dpi": 100, "font.size": 11, "axes.spines.top": False, "axes.spines.right": False})


def image_grid(images: torch.Tensor, titles: Sequence[str] | None = None, columns: int = 10, title: str = ""):
    """Show normalized images (N, 1, 28, 28) in a grid, each with an optional caption."""
    n = len(images)
    rows = max(1, -(-n // columns))  # ceil division
    fig, axes = plt.subplots(rows, columns, figsize=(1.2 * columns, 1.35 * rows + (0.4 if title else 0)))
    for i, ax in enumerate(axes.flat if hasattr(axes, "flat") else [axes]):
        ax.axis("off")
        if i < n:
            ax.imshow(denormalize(images[i]).squeeze(0), cmap="gray_r", vmin=0, vmax=1)
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


# ----------------------------------------------------------------------------- notebooks 06-07: federated learning


def accuracy_curves(histories, title: str = "Test accuracy", target: float | None = None, x: str = "round"):
    """Test accuracy of several federated runs (``federated.History``) against rounds or MB sent."""
    if x not in ("round", "mb"):
        raise ValueError(f"x must be 'round' or 'mb', got {x!r}.")
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for h in histories:
        xs = h["round"] if x == "round" else h.cumulative_mb()
        ax.plot(xs, [100 * a for a in h["test_acc"]], "-", marker="." if len(h) < 60 else None, label=h.label)
    if target is not None:
        ax.axhline(100 * target, color="gray", linestyle=":", label=f"target {target:.0%}")
    xlabel = "communication round" if x == "round" else "MB communicated (up + down)"
    ax.set(xlabel=xlabel, ylabel="test accuracy (%)", title=title)
    if x == "round":
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))  # rounds are whole numbers
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def label_distribution(counts: torch.Tensor, title: str = "Labels held by each client", ax=None):
    """Stacked bars: one bar per client, one colour per class; counts is (clients, classes)."""
    clients, classes = counts.shape
    if ax is None:
        fig, ax = plt.subplots(figsize=(min(12, 2 + 0.25 * clients), 3.4))
    else:
        fig = ax.figure
    bottom = torch.zeros(clients)
    colors = plt.get_cmap("tab10")
    for c in range(classes):
        ax.bar(range(clients), counts[:, c], bottom=bottom, color=colors(c % 10), width=0.85, label=str(c))
        bottom += counts[:, c]
    ax.set(xlabel="client", ylabel="examples", title=title)
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.legend(title="digit", ncol=2, fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- notebook 08: privacy


def histograms(samples: dict[str, torch.Tensor], xlabel: str, title: str = "", bins: int = 40, marker=None):
    """Overlaid step histograms, one per labelled sample; ``marker`` draws a labelled vertical line."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for label, values in samples.items():
        ax.hist(values.flatten().double().numpy(), bins=bins, histtype="step", linewidth=1.8, label=label)
    if marker is not None:
        ax.axvline(marker[0], color="gray", linestyle=":", label=marker[1])
    ax.set(xlabel=xlabel, ylabel="count", title=title)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def privacy_tradeoff(noise_multipliers: Sequence[float], accuracies: Sequence[float], epsilons: Sequence[float]):
    """Final test accuracy against the DP noise multiplier, each point labelled with its epsilon."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.plot(noise_multipliers, [100 * a for a in accuracies], "o-", color="C3")
    for sigma, acc, eps in zip(noise_multipliers, accuracies, epsilons, strict=True):
        text = "no noise, ε=∞" if eps == float("inf") else f"ε≈{eps:.3g}"
        ax.annotate(text, (sigma, 100 * acc), textcoords="offset points", xytext=(4, 7), fontsize=9)
    ax.set(xlabel="noise multiplier σ (noise std = σ·S on the sum)", ylabel="test accuracy (%)")
    ax.set_title("DP-FedAvg: privacy costs accuracy")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def draw_deployment(config):
    """The processes of a Flower deployment (``fedtutor.flower.DeploymentConfig``) and what travels
    between them; returns the figure."""
    n = config.clients
    fig, ax = plt.subplots(figsize=(8, 1.6 + 0.9 * n))
    ax.set_axis_off()
    ax.set(xlim=(0, 10), ylim=(-0.6, n + 0.2))
    box = {"boxstyle": "round", "ec": "gray"}
    server_y = (n - 1) / 2
    server = f"flower-superlink\n{config.host}:{config.port}\nServerApp: FedAvg +\ntest-set evaluation"
    ax.text(2.0, server_y, server, ha="center", va="center", fontsize=9, bbox={**box, "fc": "#dbe9f6"})
    for i in range(n):
        y = n - 1 - i
        client = f"flower-supernode {i}\nClientApp: local_update\npartition {i} of {n} (stays here)"
        ax.text(8.0, y, client, ha="center", va="center", fontsize=9, bbox={**box, "fc": "#fde2c8"})
        down, up = {"arrowstyle": "->", "color": "C0"}, {"arrowstyle": "->", "color": "C1"}
        ax.annotate("", xy=(6.4, y + 0.12), xytext=(3.6, server_y + 0.12), arrowprops=down)
        ax.annotate("", xy=(3.6, server_y - 0.12), xytext=(6.4, y - 0.12), arrowprops=up)
    legend = "blue: global weights (ArrayRecord) down  ·  orange: new weights + num-examples up"
    ax.text(5.0, -0.45, legend, ha="center", fontsize=8, color="dimgray")
    ax.set_title(f"One machine, {n + 1} Flower processes (plus the helpers Flower starts for each app)")
    fig.tight_layout()
    return fig


def message_log(log, title: str = "Bytes moved"):
    """A horizontal bar per (kind, sender -> receiver) of a ``workers.MessageLog``: who sent how many bytes."""
    totals = log.totals()
    labels = [f"{k}: {s} -> {r}" for k, s, r in totals]
    values = [nbytes for _, nbytes in totals.values()]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(labels) + 1.2))
    bars = ax.barh(labels, values, color=["C3" if v else "C7" for v in values])
    ax.bar_label(bars, [f"{v:,} B" for v in values], padding=3, fontsize=9)
    ax.invert_yaxis()
    ax.set(xlabel="bytes of tensor payload", title=title)
    ax.set_xlim(0, max(values + [1]) * 1.3)
    fig.tight_layout()
    return fig


def draw_workers(workers, title: str = "Who holds what"):
    """One column per ``VirtualWorker``, a box per object it holds (red: private), arrows for pointers."""
    from fedtutor.workers import Pointer

    rows = max([len(w.store) for w in workers] + [1])
    fig, ax = plt.subplots(figsize=(3.4 * len(workers), 0.55 * rows + 1.8))
    boxes = {}  # object id -> (column, text artist), so arrows can start and end at box edges
    for col, worker in enumerate(workers):
        ax.text(col, 0.2, worker.name, ha="center", fontsize=13, weight="bold")
        for row, (object_id, entry) in enumerate(worker.store.items(), start=1):
            style = {"boxstyle": "round", "facecolor": "#f4c7c3" if entry.private else "#d9ead3", "edgecolor": "gray"}
            label = f"#{object_id} {entry.kind}"
            boxes[object_id] = col, ax.text(col, -0.6 * row, label, ha="center", va="center", fontsize=8, bbox=style)
    for worker in workers:
        for object_id, entry in worker.store.items():
            if isinstance(entry.value, Pointer) and entry.value.id in boxes:
                (from_col, source), (to_col, target) = boxes[object_id], boxes[entry.value.id]
                ends = ((1, 0.5), (0, 0.5)) if to_col < from_col else ((0, 0.5), (1, 0.5))
                arrow = {"arrowstyle": "->", "color": "C0", "lw": 1.5}
                ax.annotate("", xy=ends[0], xycoords=target, xytext=ends[1], textcoords=source, arrowprops=arrow)
    legend = "green: public   red: private   arrow: a pointer held there"
    ax.text(0.5, 0.0, legend, transform=ax.transAxes, ha="center", fontsize=9, color="gray")
    ax.set(xlim=(-0.6, len(workers) - 0.4), ylim=(-0.6 * rows - 0.6, 0.6), title=title)
    ax.axis("off")
    fig.tight_layout()
    return fig
