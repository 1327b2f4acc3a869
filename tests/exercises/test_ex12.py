"""Exercises 12.1-12.2 (the classroom federation): wrong answers are rejected with specific feedback, the
notebook's solutions pass. Each case is ``(callable building the arguments to check, feedback regex)``.
"""

from __future__ import annotations

import pytest
from _support import assert_rejected, run_exercise_cell

import fedtutor.course.exercises.ex12  # noqa: F401 - registers 12.x (also imported by fedtutor.course.exercises)

RIGHT = {
    "someone on the campus Wi-Fi": "encrypted bytes",
    "a stranger without an enrolled key": "nothing",
    "the instructor's server": "each update",
    "the instructor's server, with SecAgg+": "only the sum",
}


def _with(**change: str) -> dict:
    names = dict(zip(("wifi", "stranger", "server", "secagg"), RIGHT, strict=True))
    return {**RIGHT, **{names[k]: v for k, v in change.items()}}


def _records() -> list[dict]:
    """The notebook's quick run in numbers: student 2 closed the lid after round 1 (still 'connected' in round 2)."""
    return [
        {"round": 1, "students": [1, 2], "clients": [0, 1], "connected": [1, 2]},
        {"round": 2, "students": [1], "clients": [0], "connected": [1, 2]},
    ]


WRONG_ANSWERS: dict[str, list] = {
    "12.1": [
        (lambda: (...,), r"No answer yet"),
        (lambda: (_with(server="only the sum"),), r"Without secure aggregation the server receives every"),
        (lambda: (_with(server="encrypted bytes"),), r"TLS ends at the server"),
        (lambda: (_with(wifi="nothing"),), r"unreadable, not invisible"),
        (lambda: (_with(wifi="each update"),), r"on the Wi-Fi the update is ciphertext"),
        (lambda: (_with(stranger="encrypted bytes"),), r"refused before any message"),
        (lambda: (_with(secagg="nothing"),), r"still needs the sum"),
        (lambda: (_with(secagg="each update"),), r"arrives masked"),
        (lambda: (_with(wifi="encrypted"),), r"not one of OPTIONS"),  # a typo of an option
        (lambda: ({k: v for k, v in RIGHT.items() if "SecAgg" not in k},), r"missing: .*SecAgg\+"),
    ],
    "12.2": [
        (lambda: (..., _records(), 2), r"No answer yet"),
        # partition ids (the records' `clients`) instead of student numbers
        (lambda: ({0: [1, 2], 1: [1]}, _records(), 2), r"Key 0 is a partition id"),
        # `connected` instead of `students`: student 2 still looked connected in round 2
        (lambda: ({1: [1, 2], 2: [1, 2]}, _records(), 2), r"still counted as connected in round\(s\) \[2\]"),
        # counts instead of lists
        (lambda: ({1: 2, 2: 1}, _records(), 2), r"Student 1: give the list of rounds"),
        # only the last round looked at
        (lambda: ({1: [2], 2: []}, _records(), 2), r"Student 1 also contributed to round\(s\) \[1\]"),
        # students who contributed nothing left out (a third enrolled student never joined)
        (lambda: ({1: [1, 2], 2: [1]}, _records(), 3), r"one entry per enrolled student \(\[1, 2, 3\]\)"),
    ],
}


@pytest.mark.parametrize(
    ("exercise_id", "make", "feedback"), [(e, m, f) for e, cases in WRONG_ANSWERS.items() for m, f in cases]
)
def test_wrong_answer_is_rejected_with_specific_feedback(exercise_id, make, feedback):
    assert_rejected(exercise_id, make(), feedback)


def test_the_notebooks_solutions_pass():
    run_exercise_cell("12.1")

    class View:
        records = _records()

    namespace = run_exercise_cell("12.2", view=View(), students=2)
    assert namespace["rounds_of"] == {1: [1, 2], 2: [1]}
    three = run_exercise_cell("12.2", view=View(), students=3)  # an enrolled student who never came: []
    assert three["rounds_of"][3] == []
