"""Exercises with automatic feedback: ``check(id, answer)``, ``hint(id)``, ``solution(id)``.

Each exercise is a checker function registered under an id like ``"02.1"`` (notebook 02,
exercise 1). A checker raises ``Wrong("...")`` with *specific* feedback (what is off and
by how much), never a bare "wrong"; ``check`` turns silence into a green tick. Because a
wrong answer raises, the source notebooks (which contain the solutions) fail in CI the day
a solution stops being right, and a student copy fails loudly at the placeholder.

Sections below are per notebook, in course order.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


class Wrong(AssertionError):
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


def _expect(condition: bool, feedback: str) -> None:
    if not condition:
        raise Wrong(feedback)


def _expect_tensor(value: Any, name: str, shape: tuple[int, ...] | None = None, dtype: torch.dtype | None = None):
    _expect(isinstance(value, torch.Tensor), f"{name} should be a torch.Tensor, got {type(value).__name__}.")
    if shape is not None:
        _expect(tuple(value.shape) == shape, f"{name} should have shape {shape}, got {tuple(value.shape)}.")
    if dtype is not None:
        _expect(value.dtype == dtype, f"{name} should have dtype {dtype}, got {value.dtype}.")


# ----------------------------------------------------------------------------- notebook 00: setup


@exercise(
    "00.1",
    hint="`fedtutor.quick_mode()` returns a bool; the environment variable that forces it is FEDTUTOR_QUICK.",
    solution="""
    answer = fedtutor.quick_mode()
    """,
)
def _check_quick_mode(answer: Any) -> str:
    import fedtutor

    _expect(isinstance(answer, bool), f"Answer with a bool (True/False), got {type(answer).__name__}.")
    actual = fedtutor.quick_mode()
    _expect(answer == actual, f"This kernel is in {'quick' if actual else 'full'} mode; you answered {answer}.")
    return f"You are in {'quick' if actual else 'full'} mode."


@exercise(
    "00.2",
    hint="`fedtutor.data.mnist_source()` returns a DataSource; look at its `n_train` attribute.",
    solution="""
    n_train = fedtutor.data.mnist_source().n_train
    """,
)
def _check_n_train(n_train: Any) -> str:
    from fedtutor.data import mnist_source

    source = mnist_source()
    _expect(isinstance(n_train, int), f"Answer with an int, got {type(n_train).__name__}.")
    _expect(
        n_train == source.n_train,
        f"{n_train:,} is not it: the data in use is {source.name}. Did you count test images too?",
    )
    return f"{source.name} has {n_train:,} training images."


# ----------------------------------------------------------------------------- notebook 01: PyTorch basics


@exercise(
    "01.1",
    hint="Give `x` shape (3, 1) and `y` shape (1, 4): broadcasting stretches both to (3, 4).",
    solution="""
    x = torch.arange(3.0).reshape(3, 1)  # (3, 1)
    y = torch.arange(4.0).reshape(1, 4)  # (1, 4)
    table = x * 10 + y  # (3, 4): table[i, j] = 10 * i + j
    """,
)
def _check_broadcast_table(table: Any) -> None:
    _expect_tensor(table, "table", shape=(3, 4))
    expected = torch.arange(3.0).reshape(3, 1) * 10 + torch.arange(4.0)
    wrong = (table.float() != expected).nonzero()
    _expect(
        len(wrong) == 0,
        f"table[{wrong[0, 0].item()}, {wrong[0, 1].item()}] is {table[tuple(wrong[0])].item()}, "
        f"expected {expected[tuple(wrong[0])].item()} (10 * row + column).",
    )


@exercise(
    "01.2",
    hint="Make `w` with requires_grad=True, compute `f = (w ** 3).sum()`, call `f.backward()`, read `w.grad`.",
    solution="""
    w = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    f = (w**3).sum()
    f.backward()
    grad = w.grad  # d/dw of w^3 is 3 w^2
    """,
)
def _check_autograd(grad: Any) -> None:
    _expect(grad is not None, "grad is None: did you call f.backward() and use w.grad (with requires_grad=True)?")
    _expect_tensor(grad, "grad", shape=(3,))
    expected = 3 * torch.tensor([1.0, 2.0, 3.0]) ** 2
    _expect(
        torch.allclose(grad, expected),
        f"grad is {grad.tolist()}, expected {expected.tolist()} (the derivative of w**3 is 3*w**2). "
        "If it is larger, gradients accumulated over several backward() calls: recreate w.",
    )


@exercise(
    "01.3",
    hint="Train for more steps or a larger learning rate; the fitted line should be close to y = 2x + 1.",
    solution="""
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(300):
        opt.zero_grad()
        loss = F.mse_loss(model(x_toy), y_toy)
        loss.backward()
        opt.step()
    """,
)
def _check_line_fit(model: Any) -> str:
    _expect(isinstance(model, torch.nn.Linear), f"model should be an nn.Linear(1, 1), got {type(model).__name__}.")
    w, b = model.weight.item(), model.bias.item()
    _expect(abs(w - 2) < 0.15, f"The slope is {w:.3f}, the data's is 2. Train longer or raise the learning rate.")
    _expect(abs(b - 1) < 0.15, f"The intercept is {b:.3f}, the data's is 1. Train longer or raise the learning rate.")
    return f"Fitted y = {w:.2f} x + {b:.2f}."


# ----------------------------------------------------------------------------- notebook 02: MNIST classifier


@exercise(
    "02.1",
    hint="Count parameters with `sum(p.numel() for p in model.parameters())`; a Linear(a, b) has a*b + b.",
    solution="""
    n_params_2nn = sum(p.numel() for p in MLP2NN().parameters())
    """,
)
def _check_2nn_params(n_params: Any) -> None:
    expected = 784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10
    _expect(isinstance(n_params, int), f"Answer with an int, got {type(n_params).__name__}.")
    _expect(
        n_params == expected,
        f"{n_params:,} is off by {n_params - expected:+,}. Did you forget the biases (one per output unit)?",
    )


@exercise(
    "02.2",
    hint="`predictions == labels` gives a bool tensor; `.float().mean()` of it is the accuracy. "
    "Per class: select the rows where labels == c first.",
    solution="""
    per_class = torch.stack([(predictions[labels == c] == c).float().mean() for c in range(10)])
    """,
)
def _check_per_class_accuracy(per_class: Any, predictions: torch.Tensor, labels: torch.Tensor) -> str:
    _expect_tensor(per_class, "per_class", shape=(10,))
    expected = torch.stack([(predictions[labels == c] == c).float().mean() for c in range(10)])
    bad = (per_class.float() - expected).abs() > 1e-6
    _expect(
        not bad.any(),
        f"Class {int(bad.nonzero()[0])}: you have {per_class[bad][0].item():.4f}, expected "
        f"{expected[bad][0].item():.4f}. Divide by the number of examples *of that class*.",
    )
    worst = int(expected.argmin())
    return f"The hardest digit for this model is {worst} ({expected[worst].item():.1%})."


@exercise(
    "02.3",
    hint="Load into a *fresh* model with `load_checkpoint(CNN(), path)` and evaluate it on the test tensors.",
    solution="""
    restored = load_checkpoint(CNN(), checkpoint_path)
    restored_acc = evaluate(restored, x_test, y_test)[1]
    """,
)
def _check_restored(restored: Any, reference_acc: float, x_test: torch.Tensor, y_test: torch.Tensor) -> None:
    from fedtutor.training import evaluate

    _expect(isinstance(restored, torch.nn.Module), f"restored should be a model, got {type(restored).__name__}.")
    acc = evaluate(restored, x_test, y_test)[1]
    _expect(
        abs(acc - reference_acc) < 1e-9,
        f"The restored model scores {acc:.2%}, the trained one {reference_acc:.2%}: "
        "the weights were not loaded (a fresh model scores about 10%).",
    )
