"""Exercises 05.1-05.3 (the trusted aggregator): wrong answers are rejected with specific feedback, the
notebook's solution passes. What moved is read from the workers' logs, from the mark the cell takes.
"""

from __future__ import annotations

import pytest
import torch
from _support import assert_rejected, run_exercise_cell
from torch import nn

from fedtutor.course.exercises import given
from fedtutor.workers import VirtualWorker, mark, sandbox

SIZES = (60, 40, 20)


@pytest.fixture(scope="module")
def grid():
    return sandbox(sizes=SIZES, seed=3)


def _count(grid, work):
    """05.1: ``work(hospital, labels, digit)`` returns the count."""
    start = mark()
    hospital = grid["hospital_b"]
    labels = grid.search("#hospital_b", "#labels")[0]
    return (work(hospital, labels, given("05.1")), grid, start)


def _released(hospital, ptr):
    hospital.release(ptr)
    return ptr.get().item()


def _fresh_grid():
    return sandbox(sizes=(30, 20, 10), seed=3)


def _count_all_labels_home(hospital, labels, digit):
    hospital.release(labels)
    return int((labels.get() == digit).sum())


def _clinics(work):
    """05.2: ``work(clinics)`` returns the weights."""
    start = mark()
    clinics = sandbox(sizes=given("05.2"), names=["clinic_x", "clinic_y", "clinic_z"], seed=0)
    return (work(clinics), clinics, start)


def _sizes(clinics):
    return [p.shape.get()[0] for p in clinics.search("#mnist", "#images")]


def _average(work):
    """05.3: ``work(a_ptr, b_ptr, k)`` returns avg_weight."""
    secure_worker = VirtualWorker("secure_worker")
    a_ptr, b_ptr = secure_worker.send(nn.Linear(4, 2), nn.Linear(4, 2))
    start = mark()
    return (work(a_ptr, b_ptr, given("05.3")), a_ptr, b_ptr, start)


def _average_locally(a_ptr, b_ptr, k):
    a, b = a_ptr.copy(), b_ptr.copy()  # both models leave secure_worker
    return ((k * a.weight + b.weight) / (k + 1)).detach()


WRONG_ANSWERS: dict[str, list] = {
    "05.1": [
        (lambda: (..., _fresh_grid(), mark()), r"No answer yet"),
        (lambda: _count(_fresh_grid(), lambda h, lab, d: 1000), r"is not the number of \d+s at hospital_b"),  # typed
        (lambda: _count(_fresh_grid(), _count_all_labels_home), r"released all its labels"),
        (lambda: _count(_fresh_grid(), lambda h, lab, d: _released(h, (lab == d + 1).sum())), r"not the number"),
        (lambda: _count(_fresh_grid(), lambda h, lab, d: int((h.objects[lab.id] == d).sum())), r"never came from"),
    ],
    "05.2": [
        (lambda: (..., _fresh_grid(), mark()), r"No answer yet"),
        (lambda: _clinics(_sizes), r"add up to"),  # raw sizes
        (lambda: _clinics(lambda c: [1 / 3] * 3), r"plain mean"),
        (lambda: _clinics(lambda c: [n / sum(_sizes(c)) for n in reversed(_sizes(c))]), r"not n_k / n"),
        (lambda: _clinics(lambda c: [n / sum(given("05.2")) for n in given("05.2")]), r"never asked every clinic"),
    ],
    "05.3": [
        (lambda: (..., None, None, mark()), r"No answer yet"),
        (lambda: _average(lambda a, b, k: ((a.weight + b.weight) / 2).get()), r"plain average"),
        (lambda: _average(lambda a, b, k: ((a.weight + k * b.weight) / (k + 1)).get()), r"weights b \d times"),
        (lambda: _average(lambda a, b, k: (k * a.weight + b.weight).get()), r"divide by the total weight"),
        (lambda: _average(_average_locally), r"secure_worker sent you \d+ bytes: whole models left it"),
    ],
}


@pytest.mark.parametrize(
    ("exercise_id", "make", "feedback"), [(e, m, f) for e, cases in WRONG_ANSWERS.items() for m, f in cases]
)
def test_wrong_answer_is_rejected_with_specific_feedback(exercise_id, make, feedback):
    assert_rejected(exercise_id, make(), feedback)


def test_the_notebooks_solutions_pass(grid):
    secure_worker = VirtualWorker("secure_worker")
    a_ptr, b_ptr = secure_worker.send(nn.Linear(4, 2), nn.Linear(4, 2))
    names = {"grid": grid, "mark": mark, "sandbox": sandbox, "SEED": 0, "print": lambda *a: None}
    run_exercise_cell("05.1", **names)
    run_exercise_cell("05.2", **names)
    run_exercise_cell("05.3", a_ptr=a_ptr, b_ptr=b_ptr, k=given("05.3"), **names)
    assert torch.is_tensor(secure_worker.objects[a_ptr.id].weight)
