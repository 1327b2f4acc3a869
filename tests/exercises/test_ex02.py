"""Exercises 02.1-02.3 (MNIST classifier): wrong answers are rejected with specific feedback, the notebook's
solution passes. Each case is ``(arguments to check, feedback regex)``; callables build them on demand.
"""

from __future__ import annotations

import pytest
import torch
from _support import assert_rejected, run_exercise_cell

from fedtutor.course.exercises import given
from fedtutor.models import CNN, MLP2NN, count_parameters
from fedtutor.training import load_checkpoint

N_2NN = count_parameters(MLP2NN())


WRONG_ANSWERS: dict[str, list] = {
    "02.1": [
        (lambda: (...,), r"No answer yet"),
        (lambda: (N_2NN,), r"should be a function"),  # the number, typed or computed once
        (lambda: (lambda m: N_2NN,), r"count_params\(the CNN\) = 199,210, but it has"),  # hard-wired to the 2NN
        (lambda: (lambda m: len(list(m.parameters())),), r"number of parameter \*tensors\*"),
        (lambda: (lambda m: sum(p.numel() for p in m.parameters() if p.dim() > 1),), r"skip the biases"),
        (lambda: (lambda m: float(sum(p.numel() for p in m.parameters())),), r"return an int"),
    ],
    "02.2": [
        (lambda: (...,), r"No answer yet"),
        (lambda: (torch.full((10,), 0.9),), r"should be a function"),  # numbers typed in
        (lambda: (lambda p, y: (p == y).float().mean().repeat(10),), r"digit \d gets .*, expected"),  # overall
        (
            lambda: (lambda p, y: torch.stack([(y[p == c] == c).float().mean() for c in range(10)]),),
            r"\*predicted\* as c \(that is precision\)",
        ),
        (
            lambda: (lambda p, y: torch.stack([(p[y == c] == c).float().sum() / len(y) for c in range(10)]),),
            r"divided by all test examples",
        ),
        (lambda: (lambda p, y: torch.stack([(p[y == c] == c).float().mean() for c in range(9)]),), r"shape \(10,\)"),
    ],  # fmt: skip
    "02.3": [
        (lambda: (..., CNN()), r"No answer yet"),
        (lambda: (_model := CNN(), _model), r"is your trained CNN itself"),  # `restored = model`
        (lambda: (MLP2NN(), CNN()), r"does not hold the checkpoint's values"),  # fresh, nothing loaded
        (lambda: (CNN(), CNN()), r"whose layers differ"),  # the wrong architecture
        (lambda: (torch.load(given("02.3"), weights_only=True), CNN()), r"a dict of tensors"),
    ],
}


@pytest.mark.parametrize(
    ("exercise_id", "make", "feedback"), [(e, m, f) for e, cases in WRONG_ANSWERS.items() for m, f in cases]
)
def test_wrong_answer_is_rejected_with_specific_feedback(exercise_id, make, feedback):
    assert_rejected(exercise_id, make(), feedback)


@pytest.mark.parametrize("exercise_id", ["02.1", "02.2", "02.3"])
def test_the_notebooks_solution_passes(exercise_id):
    run_exercise_cell(exercise_id, model=CNN())


def test_the_colleagues_checkpoint_is_refused_by_the_wrong_architecture():
    with pytest.raises(Exception, match=r"."):
        load_checkpoint(CNN(), given("02.3"))
