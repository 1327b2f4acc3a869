"""Shared by the tests of tests/exercises/: run a case against ``check``, and run a source notebook's exercise cell."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fedtutor
from fedtutor import data
from fedtutor import federated as fl
from fedtutor.course import student
from fedtutor.course.exercises import Wrong, check, given, hint, solution
from fedtutor.models import CNN, MLP2NN, count_parameters
from fedtutor.training import load_checkpoint

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def assert_rejected(exercise_id: str, args: tuple, feedback: str) -> None:
    """``check(exercise_id, *args)`` raises Wrong whose message matches the regex ``feedback``."""
    with pytest.raises(Wrong) as caught:
        check(exercise_id, *args)
    assert re.search(feedback, str(caught.value), re.S), f"feedback was: {caught.value}"


def exercise_cell(exercise_id: str) -> str:
    """The source of the source notebook's cell that checks ``exercise_id`` (solution included)."""
    path = next(NOTEBOOKS.glob(f"{exercise_id[:2]}-*.ipynb"))
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code" and student.exercise_id(cell.source) == exercise_id:
            assert student.solution_regions(cell.source)[0], f"{path.name}: the {exercise_id} cell has no solution"
            return cell.source
    raise AssertionError(f"{path.name} has no cell checking {exercise_id}")


def run_exercise_cell(exercise_id: str, **names: Any) -> dict[str, Any]:
    """Execute the notebook's exercise cell (its solution and its ``check``) in a namespace like the notebook's.

    A wrong solution raises Wrong here; returns the namespace so a test can look at what the cell made.
    """
    namespace: dict[str, Any] = {
        "torch": torch, "nn": nn, "F": F, "copy": copy, "fedtutor": fedtutor, "data": data, "fl": fl,
        "check": check, "hint": hint, "solution": solution, "given": given,
        "CNN": CNN, "MLP2NN": MLP2NN, "count_parameters": count_parameters, "load_checkpoint": load_checkpoint,
    }  # fmt: skip
    namespace.update(names)
    exec(compile(exercise_cell(exercise_id), f"<exercise {exercise_id}>", "exec"), namespace)  # noqa: S102
    return namespace
