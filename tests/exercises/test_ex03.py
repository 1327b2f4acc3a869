"""Exercises 03.1-03.3 (workers and pointers): wrong answers are rejected with specific feedback, the
notebook's solution passes. The checker reads the workers' logs from the mark the cell takes.

Each case is ``(make, feedback regex)``; ``make()`` does the (wrong) work on fresh workers and returns
the arguments of ``check``.
"""

from __future__ import annotations

import pytest
import torch
from _support import assert_rejected, run_exercise_cell

from fedtutor.course.exercises import check, given
from fedtutor.workers import VirtualWorker, mark


def _dot(work):
    """03.1: alice holds the learner's vector; ``work(numbers)`` returns dot."""
    alice = VirtualWorker("alice")
    start = mark()
    numbers = alice.hold(given("03.1"), private=False)
    return (work(numbers), alice, start)


def _local_copy(numbers):
    v = numbers.copy()  # the whole vector comes home: the local shortcut
    return v @ v


def _chain(build):
    bob, alice = VirtualWorker("bob"), VirtualWorker("alice")
    start = mark()
    return (build(bob, alice), start)


def _payroll(work):
    """03.3: bob holds a private payroll; ``work(bob, payroll)`` returns mean_salary."""
    bob = VirtualWorker("bob")
    start = mark()
    payroll = bob.hold(given("03.3"), private=True)
    return (work(bob, payroll), payroll, start)


def _release_everything(bob, payroll):
    bob.release(payroll)
    return payroll.copy().mean().item()


def _released_mean(bob, payroll, of=lambda p: p.mean()):
    result = of(payroll)
    bob.release(result)
    return result.get().item()


WRONG_ANSWERS: dict[str, list] = {
    "03.1": [
        (lambda: (..., VirtualWorker("alice"), mark()), r"No answer yet"),
        (lambda: _dot(lambda v: torch.tensor(55.0)), r"not the dot product of alice's vector"),  # the old answer
        (lambda: _dot(_local_copy), r"alice sent you \d+ bytes at once: that is her whole vector"),
        (lambda: _dot(lambda v: v.get() @ given("03.1")), r"bytes at once"),
        (lambda: _dot(lambda v: given("03.1") @ given("03.1")), r"alice computed nothing and sent nothing"),
        (lambda: _dot(lambda v: (v * v).get()), r"should be one number"),
        (lambda: _dot(lambda v: (v[1:] @ v[1:]).get()), r"not the dot product"),  # off by one
    ],
    "03.2": [
        (lambda: (..., mark()), r"No answer yet"),
        (lambda: _chain(lambda bob, alice: bob.send(given("03.2"))), r"points to bob; it should point to alice"),
        (lambda: _chain(lambda bob, alice: alice.send(given("03.2"))), r"alice holds a Tensor, not a pointer"),
        (lambda: _chain(lambda bob, alice: bob.send(alice.send(given("03.2")))), r"points to bob"),
        (lambda: _chain(lambda bob, alice: alice.send(bob.send(torch.tensor([42.0])))), r"your number given"),
    ],
    "03.3": [
        (lambda: (..., None, mark()), r"No answer yet"),
        (lambda: _payroll(lambda bob, p: 3820.0), r"is not the mean of bob's payroll"),  # the old answer
        (lambda: _payroll(_release_everything), r"released the raw salaries"),
        (lambda: _payroll(lambda bob, p: _released_mean(bob, p, lambda q: q.median())), r"not the mean"),
        (lambda: _payroll(lambda bob, p: _released_mean(bob, p, lambda q: q.sum() / (q.numel() - 1))), r"not the mean"),
        (lambda: _payroll(lambda bob, p: given("03.3").mean().item()), r"bob released nothing"),
    ],
}


@pytest.mark.parametrize(
    ("exercise_id", "make", "feedback"), [(e, m, f) for e, cases in WRONG_ANSWERS.items() for m, f in cases]
)
def test_wrong_answer_is_rejected_with_specific_feedback(exercise_id, make, feedback):
    assert_rejected(exercise_id, make(), feedback)


@pytest.mark.parametrize("exercise_id", ["03.1", "03.2", "03.3"])
def test_the_notebooks_solution_passes(exercise_id):
    run_exercise_cell(exercise_id, alice=VirtualWorker("alice"), bob=VirtualWorker("bob"), mark=mark)


def test_earlier_attempts_count_neither_for_nor_against():
    alice = VirtualWorker("alice")
    numbers = alice.hold(given("03.1"), private=False)
    greedy = numbers.copy()  # an earlier attempt brought the whole vector home...
    start = mark()  # ...but the exercise cell starts here
    check("03.1", (numbers @ numbers).get(), alice, start)
    assert torch.equal(greedy, given("03.1"))
    early = (numbers @ numbers).get()  # a right answer computed before the next mark...
    assert_rejected("03.1", (early, alice, mark()), r"alice computed nothing")  # ...does not count after it
