"""Interactive pieces for the notebooks: a live accuracy plot and an alpha slider.

``LivePlot`` redraws a federated run's accuracy curve in place after each round: in JupyterLab
the curve grows while the rounds run; a notebook executed headless (nbconvert, nbval) keeps the
final figure. At most one redraw per ``min_interval`` seconds (plus the final one), so rendering
does not slow a long run; only the display depends on the clock, never a number.
``alpha_explorer`` is a slider over Dirichlet's alpha that redraws the per-client label counts.
"""

from __future__ import annotations

import sys
import time

import torch

__all__ = ["LivePlot", "alpha_explorer", "label_skew_figure"]

# matplotlib (~30 MB) is imported where a figure is drawn, not here: ``run_federated`` imports
# this module in plain scripts and benchmarks too, where nothing is ever drawn.


def in_jupyter() -> bool:
    """True inside a Jupyter kernel (JupyterLab, classic, or a headless nbconvert run)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:  # a Jupyter kernel has always imported IPython; a script need not pay for it
        return False
    shell = ipython.get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class LivePlot:
    """Keeps one displayed figure of ``history`` up to date; call ``update()`` after each round.

    ``handle`` is where figures go (anything with ``.update(figure)``); by default a new IPython
    display area. Outside IPython there is no display to update, and updates do nothing.
    """

    def __init__(self, history, target: float | None = None, min_interval: float = 1.0, handle=None) -> None:
        from IPython.display import display

        self.history, self.target, self.min_interval = history, target, min_interval
        self.last_drawn = float("-inf")
        self.handle = handle if handle is not None else display(_placeholder_figure(history.label), display_id=True)

    def update(self) -> None:
        if time.monotonic() - self.last_drawn >= self.min_interval:
            self._draw()

    def close(self) -> None:
        """Draw the final state (the figure a headless run keeps)."""
        self._draw()

    def _draw(self) -> None:
        if self.handle is None:
            return
        import matplotlib.pyplot as plt

        fig = self.history.plot(target=self.target)
        self.handle.update(fig)
        plt.close(fig)  # the inline backend must not show it a second time at the end of the cell
        self.last_drawn = time.monotonic()


def _placeholder_figure(label: str):
    """An empty frame shown until the first round ends (keeps the cell's height stable)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.set(xlabel="round", ylabel="test accuracy (%)", title=f"{label}: waiting for round 1")
    plt.close(fig)
    return fig


def label_skew_figure(labels: torch.Tensor, num_clients: int = 20, alpha: float = 1.0, seed: int = 0):
    """The label distribution of a Dirichlet(alpha) split: one stacked bar per client."""
    from fedtutor.data import dirichlet, label_counts
    from fedtutor.plots import label_distribution

    counts = label_counts(labels, dirichlet(labels, num_clients, alpha, seed))  # (num_clients, 10)
    return label_distribution(counts, title=f"Dirichlet(alpha={alpha:.3g}): labels held by each client")


def alpha_explorer(labels: torch.Tensor, num_clients: int = 20, seed: int = 0, alpha: float = 1.0):
    """A slider over Dirichlet alpha (log scale, 0.01 to 100) redrawing each client's label counts."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    slider = widgets.FloatLogSlider(value=alpha, base=10, min=-2, max=2, step=0.25, description="alpha")

    def draw(alpha: float) -> None:
        fig = label_skew_figure(labels, num_clients, alpha, seed)
        display(fig)
        plt.close(fig)  # shown once, inside the slider's output area

    return widgets.interact(draw, alpha=slider)
