"""Exercises of notebook 01: PyTorch basics. Each learner gets their own numbers (``given``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from fedtutor.course.exercises._common import Wrong, exercise, expect, expect_tensor, given_inputs


def _table_inputs(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    rows, cols = torch.randint(3, 7, (2,), generator=g).tolist()
    a = torch.randint(0, 10, (rows,), generator=g).float()  # (R,)
    b = torch.randint(0, 10, (cols + 1,), generator=g).float()  # (C,), never as long as a
    return a, b


@exercise(
    "01.1",
    hint="Give `a` shape (R, 1) and `b` shape (1, C) (reshape or a[:, None]): broadcasting stretches both to (R, C).",
    given=_table_inputs,
)
def _check_broadcast_table(table: Any) -> str:
    a, b = given_inputs("01.1")
    expected = 10 * a.reshape(-1, 1) + b  # (R, C)
    rows, cols = expected.shape
    expect_tensor(table, "table")
    expect(
        rows == cols or tuple(table.shape) != (cols, rows),  # a square table cannot be told swapped by shape
        f"table has shape {tuple(table.shape)}: rows and columns are swapped; row i belongs to a[i].",
    )
    expect(tuple(table.shape) == (rows, cols), f"table should have shape ({rows}, {cols}), got {tuple(table.shape)}.")
    wrong = (table.float() != expected).nonzero()
    if len(wrong):
        i, j = wrong[0].tolist()
        raise Wrong(
            f"table[{i}, {j}] is {table[i, j].item():g}, expected 10 * a[{i}] + b[{j}] = {expected[i, j].item():g}."
        )
    return f"Every entry of the ({rows}, {cols}) table is 10 * a[i] + b[j]."


def _autograd_inputs(g: torch.Generator) -> torch.Tensor:
    n = int(torch.randint(3, 7, (1,), generator=g))
    return (torch.rand(n, generator=g) * 4 - 2).round(decimals=2)  # (n,) in [-2, 2]


@exercise(
    "01.2",
    hint="Call `w.requires_grad_()`, compute `f = (w ** 3).sum()`, call `f.backward()`, and set `grad = w.grad`.",
    given=_autograd_inputs,
)
def _check_autograd(w: Any, grad: Any) -> str:
    w0 = given_inputs("01.2")
    expect_tensor(w, "w", shape=tuple(w0.shape))
    expect(torch.equal(w.detach(), w0), "w is not the tensor given('01.2') gave you: use that one, unchanged.")
    expect(w.requires_grad, "w does not require gradients: call w.requires_grad_() before computing f.")
    expect(grad is not None, "grad is None: call f.backward() first, then read w.grad.")
    expect_tensor(grad, "grad", shape=tuple(w0.shape))
    expect(
        grad is w.grad,
        "grad is not w.grad: let autograd fill w.grad with f.backward() and use that, rather than numbers "
        "you worked out or typed.",
    )
    expected = 3 * w0**2
    expect(
        not torch.allclose(grad, 2 * expected),
        "grad is twice the derivative: backward() ran twice and gradients accumulate. Recreate w and run once.",
    )
    expect(
        torch.allclose(grad, expected),
        f"w.grad is {[round(v, 3) for v in grad.tolist()]}, but the derivative of sum(w**3) is 3*w**2 = "
        f"{[round(v, 3) for v in expected.tolist()]}: check what f computes.",
    )
    return "w.grad, filled by backward(), is 3 * w**2 for your w."


def _line_inputs(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    slope = float(torch.rand(1, generator=g) * 2 + 1) * (1 if torch.rand(1, generator=g) < 0.5 else -1)
    intercept = float(torch.rand(1, generator=g) * 4 - 2)
    x = torch.linspace(-1, 1, 100).unsqueeze(1)  # (100, 1)
    return x, slope * x + intercept + 0.1 * torch.randn(100, 1, generator=g)  # (100, 1)


@exercise(
    "01.3",
    hint="Copy the loop of section 5 with x_fit, y_fit and a fresh nn.Linear(1, 1); "
    "append loss.item() to losses at every step. 300 steps at lr=0.1 are plenty.",
    given=_line_inputs,
)
def _check_line_fit(model: Any, losses: Any) -> str:
    x, y = given_inputs("01.3")
    expect(isinstance(model, torch.nn.Linear), f"model should be an nn.Linear(1, 1), got {type(model).__name__}.")
    expect(tuple(model.weight.shape) == (1, 1), f"model should be nn.Linear(1, 1), got {model}.")
    design = torch.cat([x, torch.ones_like(x)], 1)  # (100, 2): least squares gives the best line
    best_w, best_b = torch.linalg.lstsq(design, y).solution.flatten().tolist()
    w, b = model.weight.item(), model.bias.item()
    expect(
        abs(w - 2) > 0.05 or abs(b - 1) > 0.05 or abs(best_w - 2) < 0.05,
        "That is the line of section 5 (y = 2x + 1); your data x_fit, y_fit lies on another line: fit it.",
    )
    expect(
        abs(w - best_w) < 0.05,
        f"The slope is {w:.3f}; the best fit to x_fit, y_fit has {best_w:.3f}. "
        "Train longer or raise the learning rate.",
    )
    expect(
        abs(b - best_b) < 0.05,
        f"The intercept is {b:.3f}; the best fit has {best_b:.3f}. Train longer or raise the learning rate.",
    )
    expect(
        isinstance(losses, Sequence) and len(losses) >= 10 and all(isinstance(v, float) for v in losses),
        "losses should be the list of loss.item() values, one per training step (at least 10).",
    )
    with torch.no_grad():
        final = F.mse_loss(model(x), y).item()
    expect(
        losses[0] > 2 * final and abs(losses[-1] - final) <= 0.1 * final + 1e-3,
        f"losses goes from {losses[0]:.4f} to {losses[-1]:.4f}, but this model's loss on x_fit, y_fit is {final:.4f}: "
        "record loss.item() at every step of the loop that trained this model.",
    )
    return f"Fitted y = {w:.2f} x + {b:.2f} (best fit {best_w:.2f} x + {best_b:.2f}); the loss fell to {final:.4f}."
