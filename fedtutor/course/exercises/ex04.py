"""Exercises of notebook 04: remote training."""

from __future__ import annotations

from typing import Any

import torch

from fedtutor.course.exercises._common import exercise, expect, expect_tensor, only_worker_value


@exercise(
    "04.1",
    hint="Copy the remote loop above, with alice's pointers only: send model and optimizer together, "
    "then zero_grad, loss, backward, step on the pointers, and `.get()` the model at the end.",
    solution="""
    model = TinyLinear(2, 1)
    model_ptr, opt_ptr = alice.send(model, torch.optim.SGD(model.parameters(), lr=0.1))
    for _ in range(200):
        opt_ptr.zero_grad()
        loss_ptr = F.mse_loss(model_ptr(alice_x), alice_y)
        loss_ptr.backward()
        opt_ptr.step()
    model = model_ptr.get()
    """,
)
def _check_alice_fit(model: Any, alice: Any) -> str:
    expect(isinstance(model, torch.nn.Module), f"model should be the trained nn.Module, got {type(model).__name__}.")
    held = [v for v in only_worker_value(alice).values() if isinstance(v, torch.Tensor) and v.ndim == 2]
    x = next((v for v in held if v.shape[1] == 2), None)
    y = next((v for v in held if v.shape[1] == 1), None)
    expect(x is not None and y is not None, "alice no longer holds her data (x: (N, 2), y: (N, 1)); rerun the setup.")
    expect(bool(alice.log.where(kind="command", receiver="alice")), "alice ran no commands: train through pointers.")
    design = torch.cat([x, torch.ones(len(x), 1)], dim=1)  # (N, 3): least squares gives the best line
    best = torch.linalg.lstsq(design, y).solution.flatten()  # (3,)
    with torch.no_grad():
        mine = torch.cat([model.linear.weight.flatten(), model.linear.bias]) if hasattr(model, "linear") else None
    expect(mine is not None and mine.numel() == 3, "model should be a TinyLinear(2, 1).")
    gap = (mine - best).abs().max().item()
    expect(gap < 0.05, f"Your weights {mine.tolist()} are {gap:.3f} from the best fit {best.tolist()}: train longer.")
    w1, w2, b = mine.tolist()
    return f"Fitted y = {w1:.2f} x1 + {w2:.2f} x2 + {b:.2f} without seeing alice's data."


@exercise(
    "04.2",
    hint="A round sends the model to the worker and gets it back. Each float32 parameter is 4 bytes; "
    "count the CNN's parameters with count_parameters(CNN()).",
    solution="""
    round_bytes = 2 * 4 * count_parameters(CNN())
    """,
)
def _check_round_bytes(round_bytes: Any) -> str:
    from fedtutor.models import CNN, count_parameters

    params = count_parameters(CNN())
    expect(isinstance(round_bytes, int), f"Answer with an int, got {type(round_bytes).__name__}.")
    expect(round_bytes != params, "That is the number of parameters; each float32 takes 4 bytes.")
    expect(round_bytes != 4 * params, "That is one way only: the model goes to the worker *and* comes back.")
    expect(round_bytes == 8 * params, f"{round_bytes:,} bytes is not it; expected 2 x 4 x {params:,}.")
    return f"{round_bytes / 1e6:.1f} MB per client per round, whatever the size of its data."


@exercise(
    "04.3",
    hint="For a linear layer and one example, the weight gradient is (dL/dout) * x and the bias gradient "
    "is dL/dout. Compare the released weights and bias with the ones you sent: divide the change.",
    solution="""
    delta_w = released.linear.weight - sent.linear.weight  # (1, 3): -lr * g * x
    delta_b = released.linear.bias - sent.linear.bias  # (1,):   -lr * g
    recovered = (delta_w / delta_b).flatten()  # (3,): x, exactly
    """,
)
def _check_recovered_point(recovered: Any, carol: Any) -> str:
    secrets = [v for v in only_worker_value(carol).values() if isinstance(v, torch.Tensor) and v.numel() == 3]
    expect(bool(secrets), "carol does not hold her secret point any more; rerun the cells above.")
    expect_tensor(recovered, "recovered")
    secret = secrets[0].flatten()
    expect(recovered.numel() == 3, f"recovered should hold 3 numbers (carol's x), got shape {tuple(recovered.shape)}.")
    error = (recovered.detach().flatten() - secret).abs().max().item()
    expect(error < 1e-3, f"recovered is off by up to {error:.3g}. Divide the weight change by the bias change.")
    return "One released model update gave away carol's private data point exactly."
