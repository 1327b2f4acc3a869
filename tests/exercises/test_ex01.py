"""Exercises 01.1-01.3 (PyTorch basics): wrong answers are rejected with specific feedback, the notebook's
solution passes. Each learner has their own inputs (``given``); the table uses this learner's.

Each case is ``(arguments to check, feedback regex)``; callables are evaluated on the learner's inputs.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _support import assert_rejected, run_exercise_cell
from torch import nn

from fedtutor.course.exercises import given


def _table_swapped():
    a, b = given("01.1")
    return (10 * b.reshape(-1, 1) + a,)


def _table_typed():  # the example of the old task, 10 * i + j
    a, b = given("01.1")
    return (10 * torch.arange(len(a)).reshape(-1, 1).float() + torch.arange(len(b)).float(),)


def _table_sum():
    a, b = given("01.1")
    return (a.reshape(-1, 1) + b,)


def _grad_typed():  # worked out by hand and typed in: right numbers, but not autograd's
    w = given("01.2").requires_grad_()
    return (w, 3 * w.detach() ** 2)


def _grad_untouched():
    return (given("01.2"), None)


def _grad_twice():
    w = given("01.2").requires_grad_()
    (w**3).sum().backward()
    (w**3).sum().backward()
    return (w, w.grad)


def _grad_wrong_formula():
    w = given("01.2").requires_grad_()
    (w**2).sum().backward()
    return (w, w.grad)


def _fit(x, y, steps=300, lr=0.1):
    model, losses = nn.Linear(1, 1), []
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model, losses


def _fit_section_5_line():  # trained on the toy line of section 5, not on x_fit, y_fit
    x = torch.linspace(-1, 1, 100).unsqueeze(1)
    return _fit(x, 2 * x + 1)


def _fit_typed():  # weights typed in, no training
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(2.0), model.bias.fill_(1.0)
    return (model, [1.0] * 20)


def _fit_too_short():
    return _fit(*given("01.3"), steps=5)


def _fit_no_losses():
    model, _ = _fit(*given("01.3"))
    return (model, [])


WRONG_ANSWERS: dict[str, list] = {
    "01.1": [
        (lambda: (...,), r"No answer yet"),
        (_table_typed, r"table\[\d+, \d+\] is|should have shape"),
        (_table_swapped, r"rows and columns are swapped|should have shape"),
        (_table_sum, r"expected 10 \* a\[\d+\] \+ b\[\d+\]"),
    ],
    "01.2": [
        (lambda: (..., ...), r"No answer yet"),
        (_grad_typed, r"grad is not w.grad"),
        (_grad_untouched, r"does not require gradients"),
        (_grad_twice, r"backward\(\) ran twice"),
        (_grad_wrong_formula, r"derivative of sum\(w\*\*3\) is 3\*w\*\*2"),
        (
            lambda: (torch.tensor([1.0, 2.0, 3.0], requires_grad=True), torch.tensor([3.0, 12.0, 27.0])),
            r"not the tensor given\('01.2'\) gave you|should have shape",
        ),
    ],  # fmt: skip
    "01.3": [
        (lambda: (..., ...), r"No answer yet"),
        (_fit_section_5_line, r"line of section 5|slope|intercept"),
        (_fit_typed, r"line of section 5|slope|intercept"),
        (_fit_too_short, r"Train longer"),
        (_fit_no_losses, r"losses should be the list of loss.item\(\) values"),
    ],
}


@pytest.mark.parametrize(
    ("exercise_id", "make", "feedback"), [(e, m, f) for e, cases in WRONG_ANSWERS.items() for m, f in cases]
)
def test_wrong_answer_is_rejected_with_specific_feedback(exercise_id, make, feedback):
    assert_rejected(exercise_id, make(), feedback)


@pytest.mark.parametrize("exercise_id", ["01.1", "01.2", "01.3"])
def test_the_notebooks_solution_passes(exercise_id):
    run_exercise_cell(exercise_id)


def test_inputs_differ_between_learners(monkeypatch):
    monkeypatch.setenv("FEDTUTOR_LEARNER", "ada")
    mine = given("01.2")
    monkeypatch.setenv("FEDTUTOR_LEARNER", "grace")
    theirs = given("01.2")
    assert mine.shape != theirs.shape or not torch.equal(mine, theirs)
    monkeypatch.setenv("FEDTUTOR_LEARNER", "ada")
    assert torch.equal(given("01.2"), mine)  # same learner, same inputs
