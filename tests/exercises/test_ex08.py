"""Exercises 08.1-08.2 (privacy attacks): wrong answers are rejected with specific feedback, the solution passes.

Each case is ``(answer, feedback regex)``; the answer is what a learner might hand to ``check``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _support import assert_rejected

from fedtutor import data
from fedtutor.course import check
from fedtutor.course.exercises._common import solution_code

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
_x, _ = data.load_tensors()
VICTIM = _x[1234:1235]  # the notebook's victim: a learner could return it instead of inverting


def _fixed_row(grads):  # row 0, without looking for a unit that fired
    return (grads[0][0] / grads[1][0]).reshape(1, 1, 28, 28)


def _no_division(grads):  # the right row, not divided by its bias gradient
    return grads[0][grads[1].abs().argmax()].reshape(1, 1, 28, 28)


WRONG_ANSWERS: dict[str, list] = {
    "08.1": [
        (..., r"No answer yet"),
        (lambda grads: VICTIM, r"fresh MNIST image the check drew, not your notebook's victim"),
        (VICTIM, r"Pass your function itself, not its result"),
        (_fixed_row, r"inf or NaN .* Choose the row i by its bias gradient"),
        (_no_division, r"Right picture, wrong scale"),
    ],
    "08.2": [
        (..., r"No answer yet"),
        ({3}, r"Pass your function itself"),
        (lambda grads: {int(grads[-1].argmin())}, r"You found 1 of the 2 digits"),
        (lambda grads: {i + 1 for i in (grads[-1] < 0).nonzero().flatten().tolist()}, r"Off by one"),
        (lambda grads: set((grads[-1] > 0).nonzero().flatten().tolist()), r"are not in the batch"),
    ],
}


@pytest.mark.parametrize(
    ("exercise_id", "answer", "feedback"),
    [(eid, a, f) for eid, cases in WRONG_ANSWERS.items() for a, f in cases],
)
def test_wrong_answer_is_rejected_with_specific_feedback(exercise_id, answer, feedback):
    assert_rejected(exercise_id, (answer,), feedback)


@pytest.mark.parametrize(("exercise_id", "name"), [("08.1", "recover"), ("08.2", "labels_in")])
def test_solution_from_the_source_notebook_passes(exercise_id, name):
    path, code = solution_code(exercise_id, NOTEBOOKS)
    assert path.name == "08-privacy-attacks.ipynb"
    namespace = {"torch": torch}
    exec(compile(code, str(path), "exec"), namespace)
    check(exercise_id, namespace[name])  # raises Wrong if the solution is not accepted


def test_checks_draw_fresh_victims_each_call():
    """The check's images do not come from the learner's cell: two calls draw different ones."""
    from fedtutor.course.exercises.ex08 import _fresh_victims

    first, second = _fresh_victims(3), _fresh_victims(3)
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(first, second, strict=True))
