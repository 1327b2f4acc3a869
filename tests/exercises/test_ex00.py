"""Exercises 00.1-00.2 (setup): wrong answers are rejected with specific feedback, the notebook's solution passes.

Each case is ``(arguments to check, feedback regex)``.
"""

from __future__ import annotations

import pytest
from _support import assert_rejected, run_exercise_cell

import fedtutor
from fedtutor.data import mnist_source

QUICK_AT_START = fedtutor.quick_mode()
_source = mnist_source()

WRONG_ANSWERS: dict[str, list] = {
    "00.1": [
        ((...,), r"No answer yet"),
        ((QUICK_AT_START,), r"should be a function"),  # the value read once, not a function
        ((lambda: "quick" if QUICK_AT_START else "full",), r"ask fedtutor.quick_mode\(\) at each call"),
        ((lambda: fedtutor.quick_mode(),), r'should return the string "quick" or "full", got (True|False)'),
        ((lambda: "full" if fedtutor.quick_mode() else "quick",), r"returned 'full' instead of 'quick'"),
    ],
    "00.2": [
        ((...,), r"No answer yet"),
        ((60000,), r"60,000 is not the size of the training set in use|counts the"),  # typed from the paper
        ((_source.n_train + _source.n_test,), r"counts the .* test images too"),
        ((float(_source.n_train),), r"Answer with an int"),
        ((_source.n_train - 1,), r"is not the size of the training set in use"),
    ],
}


@pytest.mark.parametrize(
    ("exercise_id", "args", "feedback"), [(e, a, f) for e, cases in WRONG_ANSWERS.items() for a, f in cases]
)
def test_wrong_answer_is_rejected_with_specific_feedback(exercise_id, args, feedback):
    assert_rejected(exercise_id, args, feedback)


@pytest.mark.parametrize("quick", ["1", None])
def test_the_notebooks_solution_of_00_1_passes_in_either_mode(monkeypatch, quick):
    monkeypatch.delenv("CI", raising=False)
    if quick:
        monkeypatch.setenv("FEDTUTOR_QUICK", quick)
    else:
        monkeypatch.delenv("FEDTUTOR_QUICK", raising=False)
    namespace = run_exercise_cell("00.1")
    assert namespace["mode"]() == ("quick" if quick else "full")


def test_the_notebooks_solution_of_00_2_passes():
    assert run_exercise_cell("00.2")["n_train"] == _source.n_train
