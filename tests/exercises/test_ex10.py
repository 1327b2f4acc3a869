"""Exercise 10.1 (an encrypted linear layer): wrong answers are rejected with specific feedback, the
notebook's solution passes. The checker reads the workers' logs from the mark the cell takes.
"""

from __future__ import annotations

import pytest
from _support import assert_rejected, run_exercise_cell

from fedtutor.course.exercises import given
from fedtutor.workers import VirtualWorker, mark, share_tensor


def _layer(work):
    """Fresh workers holding the learner's inputs; ``work(w, x_ptr, w_ptr, b_ptr)`` returns y."""
    w = {n: VirtualWorker(n) for n in ("alice", "bob", "charlie", "secure_worker")}
    start = mark()
    x, weights, bias = given("10.1")
    x_ptr = w["alice"].hold(x)
    w_ptr, b_ptr = w["bob"].hold(weights), w["bob"].hold(bias)
    return (work(w, x_ptr, w_ptr, b_ptr), list(w.values()), start)


def _shared(w, x_ptr, w_ptr, b_ptr, bias=True):
    holders = (w["alice"], w["bob"], w["charlie"])
    x_sh, w_sh, b_sh = (share_tensor(p, *holders, crypto_provider=w["secure_worker"]) for p in (x_ptr, w_ptr, b_ptr))
    y_sh = x_sh @ w_sh + b_sh if bias else x_sh @ w_sh
    w["alice"].release(y_sh)
    w["bob"].release(y_sh)
    return y_sh.get()


def _x_to_bob_in_the_clear(w, x_ptr, w_ptr, b_ptr):
    w["alice"].release(x_ptr, to=w["bob"])
    x_ptr.move(w["bob"])
    y_ptr = x_ptr @ w_ptr + b_ptr
    w["bob"].release(y_ptr)
    return y_ptr.get()


def _typed(w, x_ptr, w_ptr, b_ptr):
    x, weights, bias = given("10.1")
    return x @ weights + bias  # computed here from the inputs: no worker did anything


WRONG_ANSWERS: dict[str, list] = {
    "10.1": [
        (lambda: (..., [], mark()), r"No answer yet"),
        (lambda: _layer(_typed), r"alice and bob did not both deal shares"),
        (lambda: _layer(_x_to_bob_in_the_clear), r"alice sent its data in the clear \(move to bob\)"),
        (lambda: _layer(lambda *a: _shared(*a, bias=False)), r"without the bias"),
        (lambda: _layer(lambda w, x, ws, b: _shared(w, x, ws, b) * 2), r"is not x @ W \+ b"),
    ],
}


@pytest.mark.parametrize(
    ("exercise_id", "make", "feedback"), [(e, m, f) for e, cases in WRONG_ANSWERS.items() for m, f in cases]
)
def test_wrong_answer_is_rejected_with_specific_feedback(exercise_id, make, feedback):
    assert_rejected(exercise_id, make(), feedback)


def test_the_notebooks_solution_passes():
    workers = {n: VirtualWorker(n) for n in ("alice", "bob", "charlie", "secure_worker")}
    namespace = run_exercise_cell("10.1", mark=mark, share_tensor=share_tensor, **workers)
    shares = [m for w in workers.values() for m in w.log if m.kind == "share"]
    assert shares and all(m.nbytes > 0 for m in shares)  # every share message carries its bytes
    assert namespace["y"].shape == (1, 2)
