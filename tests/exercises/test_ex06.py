"""Exercises 06.1-06.3 (federated MNIST): wrong answers are rejected with specific feedback, the notebook's
solution passes. Each case is ``(arguments to check, feedback regex)``; callables build them on demand.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from _support import assert_rejected, exercise_cell, run_exercise_cell

from fedtutor import federated as fl
from fedtutor.models import MLP2NN, count_parameters


def _upload(factor=1.0, fixed_m=None):
    def upload_mb(model, clients, fraction):
        m = fixed_m if fixed_m is not None else max(1, round(fraction * clients))
        return factor * m * count_parameters(model) * 4 / 1e6

    return upload_mb


def _round(weighting="size", engine=False, skip_copy=False):
    """A learner's fedavg_round with one mistake (or none)."""

    def fedavg_round(global_model, clients, t, seed, epochs, batch_size, lr):
        if engine:
            fl.weighted_average([], [])
        states, sizes = [], []
        for client in clients:
            model = global_model if skip_copy else copy.deepcopy(global_model)
            opt = torch.optim.SGD(model.parameters(), lr=lr)
            g = torch.Generator().manual_seed(fl.derive_seed(seed, t, client.id))
            for _ in range(epochs):
                for idx in torch.randperm(len(client), generator=g).split(batch_size):
                    opt.zero_grad()
                    F.cross_entropy(model(client.x[idx]), client.y[idx]).backward()
                    opt.step()
            states.append(copy.deepcopy(model.state_dict()))
            sizes.append(len(client) if weighting == "size" else 1)
        return {k: sum(n * s[k] for n, s in zip(sizes, states, strict=True)) / sum(sizes) for k in states[0]}

    return fedavg_round


def _histories(config_change=None):
    """A tiny 'section 4' run (E=5) and the learner's E=1 run, on random data: enough for the check's logic."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(120, 1, 28, 28, generator=g), torch.randint(0, 10, (120,), generator=g)
    clients = fl.make_clients(x, y, list(torch.arange(120).split(20)))
    test = (x[:40], y[:40])

    def run(epochs, **change):
        settings = {"fraction": 0.5, "epochs": epochs, "batch_size": 10, "lr": 0.05, **change}
        return fl.run_federated(MLP2NN(), clients, test, fl.FedAvg(**settings), rounds=2, seed=0, live=False)

    return run(5), run(1, **(config_change or {}))


WRONG_ANSWERS: dict[str, list] = {
    "06.1": [
        (lambda: (...,), r"No answer yet"),
        (lambda: (10 * 1_663_370 * 4 / 1e6,), r"should be a function"),  # typed-in number
        (lambda: (_upload(2.0),), r"twice the upload"),  # upload and download
        (lambda: (_upload(0.25),), r"float32 weighs 4 bytes"),
        (lambda: (_upload(fixed_m=1),), r"one client's upload"),
        (lambda: (_upload(fixed_m=10),), r"expected .*m = max\(1, round\(C \* K\)\)"),  # K=100, C=0.1 hard-wired
    ],
    "06.2": [
        (lambda: (...,), r"No answer yet"),
        (lambda: (_round(weighting="plain"),), r"plain mean of the clients' weights"),
        (lambda: (_round(engine=True),), r"called the engine's fl.weighted_average"),
        (lambda: (_round(skip_copy=True),), r"global_model changed during your round"),
        (lambda: (lambda m, *a: m.state_dict(),), r"global weights unchanged"),
    ],
    "06.3": [
        (lambda: (..., 3, None, 0.1), r"No answer yet"),
        (lambda: (lambda h: (h[0], 7, h[0], 0.1))(_histories()), r"E=5; the exercise asks for E=1"),
        (lambda: (lambda h: (h[1], 7, h[0], 0.1))(_histories()), r"You answered 7, but your run first reaches"),
        (
            lambda: (lambda h: (h[1], h[1].rounds_to(0.1), h[0], 0.1))(_histories({"lr": 0.1})),
            r"Only E should change, but lr=0.1",
        ),
        (lambda: (lambda h: (h[1], h[1].rounds_to(0.1), None, 0.1))(_histories()), r"section 4's FedAvg history"),
    ],  # fmt: skip
}


@pytest.mark.parametrize(
    ("exercise_id", "make", "feedback"), [(e, m, f) for e, cases in WRONG_ANSWERS.items() for m, f in cases]
)
def test_wrong_answer_is_rejected_with_specific_feedback(exercise_id, make, feedback):
    assert_rejected(exercise_id, make(), feedback)


@pytest.mark.parametrize("exercise_id", ["06.1", "06.2"])
def test_the_notebooks_solution_passes(exercise_id):
    run_exercise_cell(exercise_id)


def test_the_notebooks_solution_of_06_3_passes_on_a_small_run():
    reference, _ = _histories()
    # The notebook's names, made small: the same clients and settings as the reference run, E=5 -> E=1.
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(120, 1, 28, 28, generator=g), torch.randint(0, 10, (120,), generator=g)
    names = {
        "clients": fl.make_clients(x, y, list(torch.arange(120).split(20))), "test": (x[:40], y[:40]),
        "C": 0.5, "LR_FEDAVG": 0.05, "rounds_fedavg": 2, "SEED": 0, "TARGET": 0.1, "MLP2NN": MLP2NN,
        "fedavg": reference,
    }  # fmt: skip
    assert "epochs=1" in exercise_cell("06.3")
    reference.config = {**reference.config, "label": None}  # labels differ on purpose
    try:
        run_exercise_cell("06.3", **names)
    except AssertionError as err:
        pytest.fail(f"the notebook's 06.3 solution was rejected: {err}")
