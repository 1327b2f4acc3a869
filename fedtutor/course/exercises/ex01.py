"""Exercises of notebook 01: PyTorch basics."""

from __future__ import annotations

from typing import Any

import torch

from fedtutor.course.exercises._common import Wrong, exercise, expect, expect_tensor


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
    expect_tensor(table, "table", shape=(3, 4))
    expected = torch.arange(3.0).reshape(3, 1) * 10 + torch.arange(4.0)
    wrong = (table.float() != expected).nonzero()
    if len(wrong):
        i, j = wrong[0].tolist()
        raise Wrong(f"table[{i}, {j}] is {table[i, j].item()}, expected {expected[i, j].item()} (10 * row + column).")


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
    expect(grad is not None, "grad is None: did you call f.backward() and use w.grad (with requires_grad=True)?")
    expect_tensor(grad, "grad", shape=(3,))
    expected = 3 * torch.tensor([1.0, 2.0, 3.0]) ** 2
    expect(
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
    for _ in range(300):
        opt.zero_grad()
        loss = F.mse_loss(model(x_toy), y_toy)
        loss.backward()
        opt.step()
    """,
)
def _check_line_fit(model: Any) -> str:
    expect(isinstance(model, torch.nn.Linear), f"model should be an nn.Linear(1, 1), got {type(model).__name__}.")
    w, b = model.weight.item(), model.bias.item()
    expect(abs(w - 2) < 0.15, f"The slope is {w:.3f}, the data's is 2. Train longer or raise the learning rate.")
    expect(abs(b - 1) < 0.15, f"The intercept is {b:.3f}, the data's is 1. Train longer or raise the learning rate.")
    return f"Fitted y = {w:.2f} x + {b:.2f}."
