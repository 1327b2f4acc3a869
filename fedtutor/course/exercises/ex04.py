"""Exercises of notebook 04: remote training (how the training ran is read from alice's log)."""

from __future__ import annotations

from typing import Any

import torch

from fedtutor.course.exercises._common import exercise, expect, expect_tensor, given_inputs
from fedtutor.course.exercises.ex03 import commands, expect_start, expect_worker, left


@exercise(
    "04.1",
    hint="Copy the remote loop above, with alice's pointers only: send model and optimizer together, "
    "then zero_grad, loss, backward, step on the pointers, and `.get()` the model at the end.",
)
def _check_alice_fit(model: Any, alice: Any, start: Any) -> str:
    from fedtutor.workers import payload_bytes

    start, alice = expect_start(start), expect_worker(alice, "alice")
    expect(isinstance(model, torch.nn.Module), f"model should be the trained nn.Module, got {type(model).__name__}.")
    params = [p.detach().flatten() for p in model.parameters()]
    expect(sum(p.numel() for p in params) == 3, "model should be a TinyLinear(2, 1): 2 weights and a bias.")
    held = [e.value for e in alice.store.values() if isinstance(e.value, torch.Tensor) and e.value.ndim == 2]
    x = next((v for v in held if v.shape[1] == 2), None)
    y = next((v for v in held if v.shape[1] == 1), None)
    expect(x is not None and y is not None, "alice no longer holds her data (x: (N, 2), y: (N, 1)); rerun the setup.")
    big = [m for m in left(alice, start) if m.nbytes > payload_bytes(model)]
    expect(
        not big,
        f"alice sent you {big[0].nbytes if big else 0} bytes at once, more than the model: her data left her. "
        "Train through the pointers instead of on a copy.",
    )
    steps = commands(alice, start).count("step")
    expect(steps > 0, "alice ran no optimizer step since the exercise started: train through opt_ptr.step().")
    design = torch.cat([x, torch.ones(len(x), 1)], dim=1)  # (N, 3): least squares gives the best line
    best = torch.linalg.lstsq(design, y).solution.flatten()  # (3,)
    mine = torch.cat(params)
    gap = (mine - best).abs().max().item()
    expect(gap < 0.05, f"Your parameters are up to {gap:.3f} from the best line through alice's points: train longer.")
    return f"The model fits alice's points; alice ran {steps} optimizer steps and never sent more than the model."


def _hidden(g: torch.Generator) -> int:
    return int(torch.randint(50, 400, (1,), generator=g))


def _mlp_parameters(hidden: int) -> int:
    return 784 * hidden + hidden + hidden * 10 + 10


@exercise(
    "04.2",
    hint="A round sends the model to the client and gets it back. Each float32 parameter is 4 bytes; count "
    "the parameters with count_parameters(model).",
    given=_hidden,
)
def _check_round_bytes(round_bytes: Any) -> str:
    params = _mlp_parameters(given_inputs("04.2"))
    expect(isinstance(round_bytes, int), f"Answer with an int, got {type(round_bytes).__name__}.")
    expect(round_bytes != params, "That is the number of parameters; each float32 takes 4 bytes.")
    expect(round_bytes != 4 * params, "That is one way only: the model goes to the client *and* comes back.")
    expect(round_bytes != 2 * 32 * params, "That counts bits: a float32 is 4 bytes (32 bits).")
    no_bias = 8 * (params - given_inputs("04.2") - 10)
    expect(round_bytes != no_bias, "The biases are parameters too: count_parameters counts every tensor.")
    expect(round_bytes == 8 * params, f"{round_bytes:,} bytes is not it: 2 trips x 4 bytes x your model's parameters.")
    return f"{round_bytes / 1e6:.2f} MB per client per round, whatever the size of its data."


def _record(g: torch.Generator) -> torch.Tensor:
    return (torch.rand(1, 3, generator=g) * 4 - 2).round(decimals=2)  # (1, 3): carol's private record


@exercise(
    "04.3",
    hint="For a linear layer and one example, the weight gradient is (dL/dout) * x and the bias gradient "
    "is dL/dout. Compare the released weights and bias with the ones you sent: divide the change.",
    given=_record,
)
def _check_recovered_point(recovered: Any) -> str:
    secret = given_inputs("04.3").flatten()
    expect_tensor(recovered, "recovered")
    expect(recovered.numel() == 3, f"recovered should hold 3 numbers (carol's x), got shape {tuple(recovered.shape)}.")
    guess, secret = recovered.detach().flatten().double(), secret.double()
    expect(
        not torch.allclose(guess * secret, torch.ones(3, dtype=torch.float64), atol=1e-3),
        "recovered is 1 / x: divide the weight change by the bias change, not the other way round.",
    )
    ratio = guess / secret
    expect(
        not (torch.allclose(ratio, ratio.mean().expand(3), atol=1e-4) and abs(ratio.mean().item() - 1) > 1e-3),
        "recovered points in the right direction but has the wrong scale: divide by the bias change.",
    )
    error = (guess - secret).abs().max().item()
    expect(error < 1e-3, f"recovered is off by up to {error:.3g}. Divide the weight change by the bias change.")
    return "recovered matches carol's record: one released update gave it away."
