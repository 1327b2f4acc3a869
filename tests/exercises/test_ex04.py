"""Exercises 04.1-04.3 (remote training): wrong answers are rejected with specific feedback, the
notebook's solution passes. 04.1 is read from alice's log, from the mark the cell takes.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _support import assert_rejected, run_exercise_cell
from torch import nn

from fedtutor.course.exercises import given
from fedtutor.models import CNN, TinyLinear, count_parameters
from fedtutor.workers import VirtualWorker, mark


def _alice():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 2, generator=g)
    alice = VirtualWorker("alice")
    x_ptr, y_ptr = alice.hold(x, private=False), alice.hold(x @ torch.tensor([[3.0], [-2.0]]) + 1, private=False)
    return alice, x_ptr, y_ptr


def _fit(train):
    """04.1: ``train(alice, x_ptr, y_ptr)`` returns the model."""
    alice, x_ptr, y_ptr = _alice()
    start = mark()
    return (train(alice, x_ptr, y_ptr), alice, start)


def _remote(alice, x_ptr, y_ptr, steps=200):
    model = TinyLinear(2, 1)
    model_ptr, opt_ptr = alice.send(model, torch.optim.SGD(model.parameters(), lr=0.1))
    for _ in range(steps):
        opt_ptr.zero_grad()
        F.mse_loss(model_ptr(x_ptr), y_ptr).backward()
        opt_ptr.step()
    return model_ptr.get()


def _on_a_local_copy(alice, x_ptr, y_ptr):
    x, y = x_ptr.copy(), y_ptr.copy()  # alice's data comes home
    model = TinyLinear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(200):
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        opt.step()
    return model


def _typed(alice, x_ptr, y_ptr):
    model = TinyLinear(2, 1)
    with torch.no_grad():
        model.linear.weight.copy_(torch.tensor([[3.0, -2.0]])), model.linear.bias.fill_(1.0)
    return model


def _hidden_params():
    hidden = given("04.2")
    return count_parameters(nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10)))


def _recover(which):
    """04.3 in the notebook's setting, for the learner's record; ``which(dw, db)`` is the answer."""
    sent = TinyLinear(3, 1)
    carol = VirtualWorker("carol")
    model_ptr, opt_ptr = carol.send(sent, torch.optim.SGD(sent.parameters(), lr=0.1))
    F.mse_loss(model_ptr(carol.hold(given("04.3"))), carol.hold(torch.tensor([[2.0]]))).backward()
    opt_ptr.step()
    carol.release(model_ptr)
    released = model_ptr.get()
    dw, db = released.linear.weight - sent.linear.weight, released.linear.bias - sent.linear.bias
    return (which(dw.detach(), db.detach()),)


WRONG_ANSWERS: dict[str, list] = {
    "04.1": [
        (lambda: (..., VirtualWorker("alice"), mark()), r"No answer yet"),
        (lambda: _fit(lambda *a: TinyLinear(2, 1)), r"alice ran no optimizer step"),
        (lambda: _fit(_on_a_local_copy), r"alice sent you \d+ bytes at once, more than the model: her data left"),
        (lambda: _fit(_typed), r"alice ran no optimizer step"),  # the true line, typed in
        (lambda: _fit(lambda *a: _remote(*a, steps=5)), r"from the best line through alice's points: train longer"),
    ],
    "04.2": [
        (lambda: (...,), r"No answer yet"),
        (lambda: (_hidden_params(),), r"number of parameters"),
        (lambda: (4 * _hidden_params(),), r"one way only"),
        (lambda: (8 * count_parameters(CNN()),), r"is not it"),  # the old answer, for the CNN
        (lambda: (64 * _hidden_params(),), r"counts bits"),
        (lambda: (8 * (_hidden_params() - given("04.2") - 10),), r"biases are parameters too"),
    ],
    "04.3": [
        (lambda: (...,), r"No answer yet"),
        (lambda: (torch.tensor([1.5, -0.4, 0.9]),), r"off by up to"),  # the old record, typed in
        (lambda: _recover(lambda dw, db: dw.flatten()), r"wrong scale"),  # forgot to divide
        (lambda: _recover(lambda dw, db: (db / dw).flatten()), r"1 / x"),
        (lambda: _recover(lambda dw, db: dw.flatten()[:2]), r"should hold 3 numbers"),
    ],
}


@pytest.mark.parametrize(
    ("exercise_id", "make", "feedback"), [(e, m, f) for e, cases in WRONG_ANSWERS.items() for m, f in cases]
)
def test_wrong_answer_is_rejected_with_specific_feedback(exercise_id, make, feedback):
    assert_rejected(exercise_id, make(), feedback)


def test_the_notebooks_solutions_pass():
    alice, x_ptr, y_ptr = _alice()
    run_exercise_cell("04.1", alice=alice, alice_x=x_ptr, alice_y=y_ptr, TinyLinear=TinyLinear, mark=mark)
    run_exercise_cell("04.2")
    sent = TinyLinear(3, 1)  # the notebook's setup cell of 04.3, for this learner's record
    carol = VirtualWorker("carol")
    model_ptr, opt_ptr = carol.send(sent, torch.optim.SGD(sent.parameters(), lr=0.1))
    F.mse_loss(model_ptr(carol.hold(given("04.3"))), carol.hold(torch.tensor([[2.0]]))).backward()
    opt_ptr.step()
    carol.release(model_ptr)
    run_exercise_cell("04.3", sent=sent, released=model_ptr.get())
