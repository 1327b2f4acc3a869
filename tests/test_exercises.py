"""fedtutor.exercises: every exercise has a hint and a solution, and the checks of notebooks 00-02
accept right answers and explain wrong ones (the helpers of later notebooks test their own)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import torch
from torch import nn

import fedtutor
from fedtutor.course import student
from fedtutor.course.exercises import EXERCISES, Wrong, check, hint, solution

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def exercise_cells(path: Path) -> list[tuple[int, str | None]]:
    """(cell number, checked exercise id) of every cell with a solution region."""
    nb = nbformat.read(path, as_version=4)
    return [
        (number, student.exercise_id(cell.source))
        for number, cell in enumerate(nb.cells, start=1)
        if cell.cell_type == "code" and student.solution_regions(cell.source)[0]
    ]


# ----------------------------------------------------------------------------- every exercise


@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_every_exercise_has_a_hint_and_a_solution_that_parses(exercise_id, capsys):
    exercise = EXERCISES[exercise_id]
    assert re.fullmatch(r"\d\d\.\d+", exercise_id), "ids look like '02.1': notebook 02, exercise 1"
    assert exercise.hint and exercise.solution and exercise.hint != exercise.solution
    compile(exercise.solution, f"solution {exercise_id}", "exec")  # a SyntaxError fails the test
    hint(exercise_id)
    solution(exercise_id)
    out = capsys.readouterr().out
    assert f"Hint for {exercise_id}: {exercise.hint}" in out
    assert f"solution for exercise {exercise_id}:\n{exercise.solution}" in out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_has_two_to_four_exercises_all_checked_by_a_registered_checker(path):
    cells = exercise_cells(path)
    assert 2 <= len(cells) <= 4, f"{path.name} has {len(cells)} exercises; the course wants 2-4 per notebook"
    number = path.name[:2]
    for cell, exercise_id in cells:
        assert exercise_id, f"{path.name} cell {cell}: an exercise cell must end with check('{number}.k', ...)"
        assert exercise_id.startswith(f"{number}."), f"{path.name} cell {cell} checks {exercise_id}"
        assert exercise_id in EXERCISES, f"{path.name} cell {cell}: exercise {exercise_id} is not registered"


def test_every_registered_exercise_is_used_by_its_notebook():
    used = {exercise_id for path in NOTEBOOKS for _, exercise_id in exercise_cells(path)}
    assert sorted(set(EXERCISES) - used) == []


def test_unknown_ids_and_missing_answers_get_specific_messages():
    with pytest.raises(KeyError, match=r"No exercise '99.9'. Known exercises: .*00\.1"):
        check("99.9", 1)
    with pytest.raises(Wrong, match=r"Exercise 00\.1: no answer yet"):
        check("00.1", ...)


# ----------------------------------------------------------------------------- notebook 00


def test_00_1_quick_mode(monkeypatch, capsys):
    monkeypatch.setenv("FEDTUTOR_QUICK", "1")
    assert check("00.1", True)
    assert "You are in quick mode." in capsys.readouterr().out
    with pytest.raises(Wrong, match="This kernel is in quick mode; you answered False"):
        check("00.1", False)
    with pytest.raises(Wrong, match="Answer with a bool"):
        check("00.1", "yes")


def test_00_2_training_set_size():
    n_train = fedtutor.data.mnist_source().n_train
    assert check("00.2", n_train)
    with pytest.raises(Wrong, match="Did you count test images too"):
        check("00.2", n_train + 10_000)
    with pytest.raises(Wrong, match="Answer with an int"):
        check("00.2", float(n_train))


# ----------------------------------------------------------------------------- notebook 01


def test_01_1_broadcast_table():
    table = torch.arange(3.0).reshape(3, 1) * 10 + torch.arange(4.0)  # (3, 4)
    assert check("01.1", table)
    off = table.clone()
    off[1, 2] = 0
    with pytest.raises(Wrong, match=r"table\[1, 2\] is 0.0, expected 12.0"):
        check("01.1", off)
    with pytest.raises(Wrong, match=r"shape \(3, 4\), got \(4, 3\)"):
        check("01.1", table.T)


def test_01_2_autograd():
    w = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (w**3).sum().backward()
    assert check("01.2", w.grad)
    with pytest.raises(Wrong, match="gradients accumulated"):
        check("01.2", 2 * w.grad)
    with pytest.raises(Wrong, match="grad is None"):
        check("01.2", None)


def line(weight: float, bias: float) -> nn.Linear:
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(weight)
        model.bias.fill_(bias)
    return model


def test_01_3_line_fit(capsys):
    assert check("01.3", line(2.05, 0.97))
    assert "Fitted y = 2.05 x + 0.97." in capsys.readouterr().out
    with pytest.raises(Wrong, match="The slope is 1.500, the data's is 2"):
        check("01.3", line(1.5, 1.0))
    with pytest.raises(Wrong, match="The intercept is 0.000, the data's is 1"):
        check("01.3", line(2.0, 0.0))
    with pytest.raises(Wrong, match="should be an nn.Linear"):
        check("01.3", nn.Sequential(line(2.0, 1.0)))


# ----------------------------------------------------------------------------- notebook 02


def test_02_1_parameter_count():
    assert check("02.1", 199_210)
    with pytest.raises(Wrong, match=r"off by -410\. Did you forget the biases"):
        check("02.1", 199_210 - 410)


def test_02_2_per_class_accuracy(capsys):
    labels = torch.arange(10).repeat(5)  # (50,) five of each digit
    predictions = labels.clone()
    predictions[labels == 3] = 8  # every 3 is mistaken for an 8
    per_class = torch.stack([(predictions[labels == c] == c).float().mean() for c in range(10)])
    assert check("02.2", per_class, predictions, labels)
    assert "The hardest digit for this model is 3 (0.0%)" in capsys.readouterr().out
    overall = torch.stack([(predictions[labels == c] == c).float().sum() / len(labels) for c in range(10)])
    with pytest.raises(Wrong, match=r"Class 0: you have 0\.1000, expected 1\.0000\. .*\*of that class\*"):
        check("02.2", overall, predictions, labels)


def test_02_3_restored_checkpoint(tmp_path):
    from fedtutor.models import MLP2NN
    from fedtutor.training import evaluate, load_checkpoint, predict, save_checkpoint

    torch.manual_seed(0)
    trained = MLP2NN()
    x = torch.randn(200, 1, 28, 28)  # (200, 1, 28, 28)
    y = predict(trained, x).argmax(1)  # labels the trained model gets all right, so a fresh one scores ~10%
    reference_acc = evaluate(trained, x, y)[1]
    assert reference_acc == 1.0
    path = save_checkpoint(trained, tmp_path / "mlp.pt")
    assert check("02.3", load_checkpoint(MLP2NN(), path), reference_acc, x, y)
    with pytest.raises(Wrong, match="the weights were not loaded"):
        check("02.3", MLP2NN(), reference_acc, x, y)
    with pytest.raises(Wrong, match="restored should be a model, got str"):
        check("02.3", str(path), reference_acc, x, y)
