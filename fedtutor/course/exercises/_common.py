"""What every exercise module shares: the registry, the ``Wrong`` feedback and the expect helpers.

Each exercise is a checker function registered under an id like ``"02.1"`` (notebook 02,
exercise 1). A checker raises ``Wrong("...")`` with *specific* feedback (what is off and
by how much), never a bare "wrong"; ``check`` turns silence into a green tick.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


class Wrong(AssertionError):  # noqa: N818 - named for how it reads to a learner: "Wrong: ..."
    """The answer is not right yet; the message says what to look at."""


@dataclass(frozen=True)
class Exercise:
    id: str
    checker: Callable[..., str | None]
    hint: str
    solution: str


EXERCISES: dict[str, Exercise] = {}


def exercise(exercise_id: str, hint: str, solution: str) -> Callable:
    """Register the decorated checker as exercise ``exercise_id``."""

    def register(checker: Callable[..., str | None]) -> Callable[..., str | None]:
        if exercise_id in EXERCISES:
            raise ValueError(f"Exercise {exercise_id} is registered twice.")
        EXERCISES[exercise_id] = Exercise(exercise_id, checker, hint.strip(), textwrap.dedent(solution).strip())
        return checker

    return register


def expect(condition: bool, feedback: str) -> None:
    if not condition:
        raise Wrong(feedback)


def expect_tensor(value: Any, name: str, shape: tuple[int, ...] | None = None, dtype: torch.dtype | None = None):
    expect(isinstance(value, torch.Tensor), f"{name} should be a torch.Tensor, got {type(value).__name__}.")
    if shape is not None:
        expect(tuple(value.shape) == shape, f"{name} should have shape {shape}, got {tuple(value.shape)}.")
    if dtype is not None:
        expect(value.dtype == dtype, f"{name} should have dtype {dtype}, got {value.dtype}.")


def only_worker_value(worker: Any, object_id: int | None = None) -> Any:
    """What a worker holds (the checker may look; the learner's pointers may not)."""
    from fedtutor.workers import VirtualWorker

    expect(isinstance(worker, VirtualWorker), f"Pass the worker itself, got {type(worker).__name__}.")
    return worker.objects[object_id] if object_id is not None else worker.objects
