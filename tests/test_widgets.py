"""fedtutor.widgets: the live accuracy plot and the Dirichlet alpha slider."""

from __future__ import annotations

import pytest
import torch

from fedtutor import federated as fl
from fedtutor import widgets


def test_live_plot_redraws_throttled_and_always_ends_with_the_final_figure():
    class Recorder:  # stands in for an IPython display handle
        def __init__(self):
            self.rounds_drawn = []

        def update(self, fig):
            self.rounds_drawn.append(len(fig.axes[0].lines[0].get_xdata()))

    assert not widgets.in_jupyter()  # pytest is no Jupyter kernel: live plotting is off by default
    history = fl.RoundHistory(label="toy")
    every, rare = (
        widgets.LivePlot(history, min_interval=0.0, handle=Recorder()),
        widgets.LivePlot(history, min_interval=3600.0, handle=Recorder()),
    )
    for t in range(1, 5):
        history.records.append({"round": t, "test_acc": 0.1 * t, "bytes_up": 0, "bytes_down": 0})
        every.update()
        rare.update()
    every.close()
    rare.close()
    assert every.handle.rounds_drawn == [1, 2, 3, 4, 4]
    assert rare.handle.rounds_drawn == [1, 4]  # the first redraw, then only the final figure
    silent = widgets.LivePlot(history, handle=None)  # plain Python: no display to update
    silent.update()
    silent.close()


def test_alpha_explorer_redraws_the_label_distribution_when_the_slider_moves(capsys):
    labels = torch.arange(10).repeat_interleave(20)
    control = widgets.alpha_explorer(labels, num_clients=8, seed=0, alpha=0.1)
    slider = control.widget.children[0]
    assert slider.description == "alpha" and slider.value == pytest.approx(0.1)
    drawn = capsys.readouterr().out.count("Figure(")  # outside a kernel, display() prints the repr
    slider.value = 10.0  # interact re-runs the drawing function
    assert capsys.readouterr().out.count("Figure(") == drawn == 1
    fig = widgets.label_skew_figure(labels, num_clients=8, alpha=10.0)
    assert fig.axes[0].get_title().startswith("Dirichlet(alpha=10)")
    assert len(fig.axes[0].patches) == 8 * 10  # one bar segment per client and digit
