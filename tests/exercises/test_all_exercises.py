"""Every registered exercise has a wrong-answer table and a solution region in its source notebook.

The tables live in tests/exercises/test_exNN.py (``WRONG_ANSWERS: dict[str, list]``, at least three
plausible wrong answers per exercise); a new exercise without one fails here.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from fedtutor.course.exercises import EXERCISES, Wrong, check, hint, solution
from fedtutor.course.exercises._common import solution_code

HERE = Path(__file__).resolve().parent
NOTEBOOKS = HERE.parents[1] / "notebooks"


def wrong_answer_table(number: str) -> dict:
    """``WRONG_ANSWERS`` of tests/exercises/test_exNN.py, imported from its file (a missing file fails)."""
    path = HERE / f"test_ex{number}.py"
    assert path.is_file(), f"{path.relative_to(HERE.parents[1])} is missing: notebook {number}'s exercises need tests"
    spec = importlib.util.spec_from_file_location(f"_wrong_answers_{number}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = getattr(module, "WRONG_ANSWERS", None)
    assert isinstance(table, dict), f"{path.name} defines no module-level WRONG_ANSWERS dict"
    return table


@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_every_exercise_has_at_least_three_wrong_answers_tested(exercise_id):
    table = wrong_answer_table(exercise_id[:2])
    cases = table.get(exercise_id, [])
    assert len(cases) >= 3, f"test_ex{exercise_id[:2]}.py has {len(cases)} wrong answers for {exercise_id}; need >= 3"


@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_every_exercise_has_its_solution_region_in_its_source_notebook(exercise_id, capsys):
    path, code = solution_code(exercise_id, NOTEBOOKS)
    assert path.name.startswith(exercise_id[:2] + "-")
    assert code.strip(), f"{path.name}: the solution region of {exercise_id} is empty"
    compile(code, f"solution {exercise_id}", "exec")  # a SyntaxError fails the test
    solution(exercise_id)
    hint(exercise_id)
    out = capsys.readouterr().out
    assert code in out, "solution() shows the notebook's region"
    assert EXERCISES[exercise_id].hint in out


def test_the_package_holds_no_copy_of_any_solution():
    for exercise in EXERCISES.values():
        assert exercise.hint, f"{exercise.id} has no hint"
        assert not hasattr(exercise, "solution"), "solutions are read from the notebooks only"


def test_unknown_ids_and_placeholders_get_specific_messages():
    with pytest.raises(KeyError, match="Known exercises"):
        check("99.9", 1)
    with pytest.raises(Wrong, match=r"replace the `\.\.\.`"):
        check(sorted(EXERCISES)[0], ...)


def test_a_wrong_answer_renders_as_a_short_message_and_stays_an_assertion_error():
    with pytest.raises(AssertionError) as caught:  # pytest and nbval still fail the cell
        check("00.2", -1)
    lines = caught.value._render_traceback_()
    assert 2 <= len(lines) <= 8 and "Not yet" in lines[0] and "00.2" in lines[0]
    assert not any("Traceback" in line or "File " in line for line in lines)
    assert re.search(r"hint\('00.2'\)", lines[-1])


def test_a_right_answer_returns_none_and_prints_the_tick(capsys):
    from fedtutor.data import mnist_source

    assert check("00.2", mnist_source().n_train) is None  # no extra Out[n] line in a notebook
    assert "✅ Exercise 00.2: correct." in capsys.readouterr().out


def test_check_records_its_outcome_in_the_notebook(monkeypatch):
    from fedtutor.course import exercises
    from fedtutor.data import mnist_source

    published = []
    monkeypatch.setattr(exercises, "_in_kernel", lambda: True)
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: published.append(obj))
    with pytest.raises(Wrong):
        check("00.2", 7)
    check("00.2", mnist_source().n_train)
    miss, hit = (p[exercises.RECORD_MIMETYPE] for p in published)
    assert all(
        exercises.RECORD_MIMETYPE == "application/vnd.fedtutor.check+json" and "text/plain" in p for p in published
    )
    assert (miss["id"], miss["passed"], hit["id"], hit["passed"]) == ("00.2", False, "00.2", True)
    assert hit["attempts"] == miss["attempts"] + 1 and miss["time"].endswith("+00:00")
    assert "7 is not the size" in miss["feedback"] and published[0]["text/plain"] == ""
    assert "correct" in published[1]["text/plain"]


def exercise_cells(path: Path) -> list[tuple[int, str | None]]:
    """(cell number, checked exercise id) of every cell of a notebook with a solution region."""
    import nbformat

    from fedtutor.course import student

    nb = nbformat.read(path, as_version=4)
    return [
        (number, student.exercise_id(cell.source))
        for number, cell in enumerate(nb.cells, start=1)
        if cell.cell_type == "code" and student.solution_regions(cell.source)[0]
    ]


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")), ids=lambda p: p.stem)
def test_each_notebooks_exercise_cells_are_checked_by_a_registered_checker_of_its_number(path):
    cells = exercise_cells(path)
    assert cells, f"{path.name} has no exercise"
    for cell, exercise_id in cells:
        assert exercise_id, f"{path.name} cell {cell}: an exercise cell must end with check('{path.name[:2]}.k', ...)"
        assert exercise_id.startswith(path.name[:2] + "."), f"{path.name} cell {cell} checks {exercise_id}"
        assert exercise_id in EXERCISES, f"{path.name} cell {cell}: exercise {exercise_id} is not registered"
