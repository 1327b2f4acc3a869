"""Exercises of notebook 08: privacy."""

from __future__ import annotations

from typing import Any

import torch

from fedtutor.course.exercises._common import exercise, expect


@exercise(
    "08.1",
    hint="For h = W1 x + b1, dL/dW1[i, :] = dL/db1[i] * x. Pick a row i whose bias gradient is not 0 "
    "(grads[1] is dL/db1) and divide.",
    solution="""
    i = grads[1].abs().argmax()  # a unit whose bias gradient is far from 0 (not a dead ReLU)
    recovered = (grads[0][i] / grads[1][i]).reshape(1, 1, 28, 28)
    """,
)
def _check_analytic_inversion(recovered: Any, original: torch.Tensor) -> str:
    expect(isinstance(recovered, torch.Tensor), f"recovered should be a tensor, got {type(recovered).__name__}.")
    expect(recovered.numel() == 784, f"recovered should hold 784 pixels (one row of dL/dW1), got {recovered.numel()}.")
    recovered = recovered.detach().reshape(original.shape)
    expect(
        bool(torch.isfinite(recovered).all()),
        "recovered has inf or NaN: that row's bias gradient is 0 (a ReLU that never fired). Pick the row with the "
        "largest |grads[1]|.",
    )
    error = (recovered - original).abs().max().item()
    same_shape = torch.nn.functional.cosine_similarity(recovered.flatten(), original.flatten(), dim=0).abs() > 0.99
    expect(
        error < 1e-3 or not same_shape,
        "Right picture, wrong scale: divide row i of dL/dW1 by the bias gradient dL/db1[i] of the same row.",
    )
    expect(error < 1e-3, f"recovered differs from the image by up to {error:.3g}: use row i of dL/dW1 and dL/db1.")
    return "No optimization needed: one division recovers the image exactly."


@exercise(
    "08.2",
    hint="The masks are the same in both rounds, so they cancel in round2 - round1. Decode the difference.",
    solution="""
    leak = decode(round2 - round1)
    """,
)
def _check_mask_reuse(leak: Any, true_difference: torch.Tensor) -> str:
    expect(isinstance(leak, torch.Tensor), f"leak should be a tensor, got {type(leak).__name__}.")
    expect(leak.dtype != torch.int64, "leak is still a ring element (int64): decode() it to floats.")
    expect(leak.shape == true_difference.shape, f"leak should have shape {tuple(true_difference.shape)}.")
    error = (leak.double() - true_difference.double()).abs().max().item()
    expect(error < 1e-4, f"leak is off by up to {error:.3g}: subtract the two masked uploads, then decode.")
    return "Reusing masks leaks how the update changed: every round needs fresh seeds."


@exercise(
    "08.3",
    hint="dp_epsilon(sigma, rounds=100, delta=1e-5) falls as sigma grows: try sigma = 0.01, 0.02, ... "
    "and keep the first one at or under the budget.",
    solution="""
    sigma = next(s / 100 for s in range(1, 10_000) if dp_epsilon(s / 100, rounds=100, delta=1e-5) <= 8)
    """,
)
def _check_noise_for_budget(sigma: Any) -> str:
    from fedtutor.privacy import dp_epsilon

    expect(isinstance(sigma, (int, float)) and sigma > 0, f"sigma should be a positive number, got {sigma!r}.")
    eps = dp_epsilon(sigma, rounds=100, delta=1e-5)
    expect(eps <= 8, f"With sigma = {sigma:g}, epsilon is {eps:.2f} > 8: add more noise.")
    expect(
        dp_epsilon(sigma - 0.01, rounds=100, delta=1e-5) > 8,
        f"sigma = {sigma:g} meets the budget, but so does {sigma - 0.01:.2f}: find the smallest (to 0.01).",
    )
    return f"sigma = {sigma:g} gives epsilon = {eps:.2f} for 100 rounds (delta = 1e-5)."
