"""Exercises with automatic feedback: ``check(id, answer)``, ``hint(id)``, ``solution(id)``, ``given(id)``.

One module per notebook (``ex00`` ... ``ex12``), in course order; the registry and the helpers
they share are in ``_common``. Because a wrong answer raises, the source notebooks (which
contain the solutions) fail in CI the day a solution stops being right, and a student copy
fails loudly at the placeholder. In a notebook a wrong answer shows one short styled message
(``Wrong`` renders itself, no traceback through the checker); a right one shows a tick and
``check`` returns ``None``, so no ``Out[n]`` line follows it.

``solution(id)`` prints the ``### BEGIN SOLUTION`` region of the exercise's cell in the course's
source notebook (``fedtutor.course.workspace.course_notebooks_dir()``): the only copy.

**The record every check leaves in the notebook** (read by ``fedtutor grade``). Each call of
``check`` publishes one ``display_data`` output, so a saved notebook carries its own record
without the learner doing anything. Its data has the MIME type ``RECORD_MIMETYPE``
(``application/vnd.fedtutor.check+json``) holding::

    {"format": 1, "id": "02.3", "passed": true, "attempts": 2,
     "time": "2025-01-31T14:03:07+00:00", "feedback": "...", "learner_seed": "..."}

``attempts`` counts this kernel's ``check`` calls for that exercise, this one included
(1 = first try); ``time`` is UTC; ``feedback`` is what the learner was shown (the note of a
pass, the message of a miss); ``learner_seed`` is a short hash of whose ``given`` inputs were
used. The same output carries ``text/plain`` (and ``text/html``): the tick for a pass, an empty
string for a miss (the message is the error output below it). Outside a kernel (scripts, tests)
nothing is published and a pass prints its text. A grader must re-run the checks rather than
trust the record: a learner can edit a saved notebook.
"""

from __future__ import annotations

import hashlib
import html
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from fedtutor.course.exercises import ex00, ex01, ex02, ex03, ex04, ex05, ex06, ex07, ex08, ex09, ex10, ex11, ex12  # noqa: F401
from fedtutor.course.exercises._common import (
    EXERCISES,
    Exercise,
    Wrong,
    given_inputs,
    learner,
    solution_code,
)

__all__ = ["EXERCISES", "RECORD_MIMETYPE", "Wrong", "check", "given", "hint", "solution"]

RECORD_MIMETYPE = "application/vnd.fedtutor.check+json"
RECORD_FORMAT = 1
_attempts: Counter[str] = Counter()  # check() calls per exercise in this kernel


def _get(exercise_id: str) -> Exercise:
    try:
        return EXERCISES[exercise_id]
    except KeyError:
        known = ", ".join(sorted(EXERCISES))
        raise KeyError(f"No exercise {exercise_id!r}. Known exercises: {known}.") from None


def record(exercise_id: str, passed: bool, attempt: int, feedback: str) -> dict[str, Any]:
    """The record of one check (the format is in the module docstring)."""
    return {
        "format": RECORD_FORMAT,
        "id": exercise_id,
        "passed": passed,
        "attempts": attempt,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "feedback": feedback,
        "learner_seed": hashlib.sha256(learner().encode()).hexdigest()[:12],
    }


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _publish(entry: dict[str, Any], text: str, styled: str) -> None:
    """One display_data output: the record, plus what the learner sees (``text``/``styled``)."""
    if not _in_kernel():
        if text:
            print(text)
        return
    from IPython.display import display

    display({RECORD_MIMETYPE: entry, "text/plain": text, "text/html": styled}, raw=True)


def check(exercise_id: str, *answer: Any) -> None:
    """Check an answer: shows a tick and returns ``None``, or raises ``Wrong`` with feedback.

    Either way the outcome is recorded in the notebook (see the module docstring).
    """
    exercise = _get(exercise_id)
    _attempts[exercise_id] += 1
    attempt = _attempts[exercise_id]
    try:
        if any(a is NotImplemented or a is ... for a in answer):
            raise Wrong(f"No answer yet: replace the `...` with your code (hint({exercise_id!r}) if you are stuck).")
        note = exercise.checker(*answer) or ""
    except Wrong as wrong:
        wrong.exercise_id, wrong.attempt = exercise_id, attempt
        _publish(record(exercise_id, False, attempt, str(wrong)), "", "")
        raise
    text = f"✅ Exercise {exercise_id}: correct." + (f" {note}" if note else "")
    styled = (
        '<div style="border-left:4px solid #2e7d32;background:#edf7ed;padding:4px 10px;color:#1b4d1e">'
        f"✅ <b>Exercise {exercise_id}: correct.</b> {html.escape(note)}</div>"
    )
    _publish(record(exercise_id, True, attempt, note), text, styled)


def given(exercise_id: str) -> Any:
    """Your own inputs for an exercise (seeded by who you are: a neighbour's answer will not fit)."""
    _get(exercise_id)
    return given_inputs(exercise_id)


def hint(exercise_id: str) -> None:
    """Print a nudge that does not give the answer away."""
    print(f"💡 Hint for {exercise_id}: {_get(exercise_id).hint}")


def solution(exercise_id: str) -> None:
    """Print one possible solution (try ``hint`` first!), from the course's source notebook."""
    from fedtutor.course.edition import off_message

    _get(exercise_id)
    if message := off_message(exercise_id):  # a class edition: the instructor turned solutions off
        print(message)
        return
    try:
        path, code = solution_code(exercise_id)
    except LookupError as err:
        print(f"No solution to show for {exercise_id}: {err}")
        return
    print(f"# One solution for exercise {exercise_id} (from {path.name}):\n{code}")
