"""Exercises with automatic feedback: ``check(id, answer)``, ``hint(id)``, ``solution(id)``.

One module per notebook (``ex00`` ... ``ex11``), in course order; the registry and the helpers
they share are in ``_common``. Because a wrong answer raises, the source notebooks (which
contain the solutions) fail in CI the day a solution stops being right, and a student copy
fails loudly at the placeholder.
"""

from __future__ import annotations

from typing import Any

from fedtutor.course.exercises import ex00, ex01, ex02, ex03, ex04, ex05, ex06, ex07, ex08, ex11  # noqa: F401
from fedtutor.course.exercises._common import EXERCISES, Exercise, Wrong

__all__ = ["EXERCISES", "Wrong", "check", "hint", "solution"]


def _get(exercise_id: str) -> Exercise:
    try:
        return EXERCISES[exercise_id]
    except KeyError:
        known = ", ".join(sorted(EXERCISES))
        raise KeyError(f"No exercise {exercise_id!r}. Known exercises: {known}.") from None


def check(exercise_id: str, *answer: Any) -> bool:
    """Check an answer; prints a tick and returns True, or raises ``Wrong`` with feedback."""
    if any(a is NotImplemented or a is ... for a in answer):
        raise Wrong(f"Exercise {exercise_id}: no answer yet. Replace the `...` with your code; hint({exercise_id!r}).")
    note = _get(exercise_id).checker(*answer)
    print(f"✅ Exercise {exercise_id}: correct." + (f" {note}" if note else ""))
    return True


def hint(exercise_id: str) -> None:
    """Print a nudge that does not give the answer away."""
    print(f"💡 Hint for {exercise_id}: {_get(exercise_id).hint}")


def solution(exercise_id: str) -> None:
    """Print one possible solution (try ``hint`` first!)."""
    print(f"# One solution for exercise {exercise_id}:\n{_get(exercise_id).solution}")
