"""What every exercise module shares: the registry, ``Wrong``, per-learner inputs and the expect helpers.

Each exercise is a checker function registered under an id like ``"02.1"`` (notebook 02,
exercise 1) with ``@exercise(id, hint=..., given=...)``. A checker raises ``Wrong("...")`` with
*specific* feedback (what is off and by how much), never a bare "wrong"; it returns a short note
that says only what it verified. Solutions have one source, the ``### BEGIN SOLUTION`` region
of the source notebook (``solution_code``); the package holds no copy.

**Inputs a learner could otherwise type.** ``given=make`` registers a function
``make(generator) -> inputs`` that builds the exercise's inputs from a generator seeded by the
learner and the exercise id (``learner_generator``). The notebook cell calls
``given("01.2")`` to get them (they are never printed in an earlier cell), and the checker
rebuilds them from the same seed, so the ground truth never comes from the learner's cell.
The learner is ``$FEDTUTOR_LEARNER`` or the login name.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import textwrap
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

# ANSI styles for the message a wrong answer shows in the notebook.
_RED, _DIM, _RESET = "\x1b[1;31m", "\x1b[2m", "\x1b[0m"
# Frames in fedtutor/ and torch/ are the checker's and the library's, not the learner's code.
_NOT_YOURS = (str(Path(__file__).resolve().parents[2]), str(Path(torch.__file__).resolve().parent))


class Wrong(AssertionError):  # noqa: N818 - named for how it reads to a learner: "Wrong: ..."
    """The answer is not right yet; the message says what to look at.

    In a notebook it renders itself as a short styled message, not a traceback through the
    checker (IPython calls ``_render_traceback_``); everywhere else it is an ordinary exception.
    """

    exercise_id: str | None = None
    attempt: int | None = None

    def _render_traceback_(self) -> list[str]:
        where = f" · exercise {self.exercise_id}" if self.exercise_id else ""
        attempt = f" {_DIM}(attempt {self.attempt}){_RESET}" if self.attempt else ""
        lines = [f"{_RED}✗ Not yet{where}{_RESET}{attempt}"]
        for paragraph in str(self).split("\n"):
            lines += textwrap.wrap(paragraph, 100) or [""]
        if self.exercise_id:
            lines.append(f"{_DIM}Stuck? hint({self.exercise_id!r}) gives a nudge.{_RESET}")
        return lines


@dataclass(frozen=True)
class Exercise:
    id: str
    checker: Callable[..., str | None]
    hint: str
    given: Callable[[torch.Generator], Any] | None = None  # builds this learner's inputs


EXERCISES: dict[str, Exercise] = {}


def exercise(
    exercise_id: str,
    hint: str,
    solution: str | None = None,
    given: Callable[[torch.Generator], Any] | None = None,
) -> Callable:
    """Register the decorated checker as exercise ``exercise_id``.

    ``solution`` is accepted and ignored while the exercise modules move to the single source
    (the notebook's solution region); do not pass it in new code.
    """
    del solution  # one source: the notebook's ### BEGIN SOLUTION region

    def register(checker: Callable[..., str | None]) -> Callable[..., str | None]:
        if exercise_id in EXERCISES:
            raise ValueError(f"Exercise {exercise_id} is registered twice.")
        EXERCISES[exercise_id] = Exercise(exercise_id, checker, hint.strip(), given)
        return checker

    return register


# ----------------------------------------------------------------------------- per-learner inputs


def learner() -> str:
    """Who is doing the exercises: ``$FEDTUTOR_LEARNER``, else the login name."""
    name = os.environ.get("FEDTUTOR_LEARNER")
    if name:
        return name
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (some containers)
        return "learner"


def learner_generator(exercise_id: str) -> torch.Generator:
    """A generator seeded by (learner, exercise): the same inputs every run, different per learner."""
    digest = hashlib.sha256(f"{learner()}\n{exercise_id}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:7], "big"))


def given_inputs(exercise_id: str) -> Any:
    """This learner's inputs for the exercise, freshly built (so edits to an earlier copy never count)."""
    ex = EXERCISES.get(exercise_id)
    if ex is None or ex.given is None:
        raise KeyError(f"Exercise {exercise_id} has no given inputs; its task text says what to use.")
    return ex.given(learner_generator(exercise_id))


# ----------------------------------------------------------------------------- the one source of solutions


def source_notebook(exercise_id: str, folder: Path | None = None) -> Path:
    """The course notebook that holds exercise ``exercise_id`` ("02.3" -> notebooks/02-*.ipynb)."""
    if folder is None:
        from fedtutor.course.student import CourseError
        from fedtutor.course.workspace import course_notebooks_dir

        try:
            folder = course_notebooks_dir()
        except CourseError as err:
            raise LookupError(str(err)) from None
    matches = sorted(Path(folder).glob(f"{exercise_id.split('.')[0]}-*.ipynb"))
    if not matches:
        raise LookupError(f"No notebook for exercise {exercise_id} in {folder}.")
    return matches[0]


def solution_code(exercise_id: str, folder: Path | None = None) -> tuple[Path, str]:
    """(notebook, code) of the solution region in the source notebook cell that checks ``exercise_id``."""
    import nbformat

    from fedtutor.course import student

    path = source_notebook(exercise_id, folder)
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code" or student.exercise_id(cell.source) != exercise_id:
            continue
        regions, _ = student.solution_regions(cell.source)
        lines = cell.source.split("\n")
        parts = [textwrap.dedent("\n".join(lines[begin + 1 : end])) for begin, end in regions]
        if parts:
            return path, "\n# ...\n".join(parts).strip("\n")
    raise LookupError(
        f"{path.name} has no cell with a `### BEGIN SOLUTION` region that checks {exercise_id}: "
        "this copy of the course carries no solutions."
    )


# ----------------------------------------------------------------------------- expect helpers


def expect(condition: bool, feedback: str) -> None:
    if not condition:
        raise Wrong(feedback)


def expect_tensor(value: Any, name: str, shape: tuple[int, ...] | None = None, dtype: torch.dtype | None = None):
    expect(isinstance(value, torch.Tensor), f"{name} should be a torch.Tensor, got {type(value).__name__}.")
    if shape is not None:
        expect(tuple(value.shape) == shape, f"{name} should have shape {shape}, got {tuple(value.shape)}.")
    if dtype is not None:
        expect(value.dtype == dtype, f"{name} should have dtype {dtype}, got {value.dtype}.")


def expect_function(value: Any, name: str) -> None:
    expect(callable(value), f"{name} should be a function (def {name}(...): ...), got {type(value).__name__}.")


def call_learner(function: Callable, *args: Any, what: str = "", name: str | None = None) -> Any:
    """Call the learner's function; an exception in it becomes feedback naming its line, not a traceback.
    ``name``: what the exercise calls the function (a lambda has no name of its own)."""
    try:
        return function(*args)
    except Wrong:
        raise
    except Exception as err:  # noqa: BLE001 - any error in the learner's code is feedback
        frames = [f for f in traceback.extract_tb(err.__traceback__) if not f.filename.startswith(_NOT_YOURS)]
        where = f" (line {frames[-1].lineno}: `{(frames[-1].line or '').strip()}`)" if frames else ""
        name = name or getattr(function, "__name__", "your function")
        raise Wrong(f"{name}{' ' + what if what else ''} raised {type(err).__name__}: {err}{where}.") from None


def only_worker_value(worker: Any, object_id: int | None = None) -> Any:
    """What a worker holds (the checker may look; the learner's pointers may not)."""
    from fedtutor.workers import VirtualWorker

    expect(isinstance(worker, VirtualWorker), f"Pass the worker itself, got {type(worker).__name__}.")
    return worker.objects[object_id] if object_id is not None else worker.objects
