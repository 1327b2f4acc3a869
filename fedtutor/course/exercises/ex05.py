"""Exercises of notebook 05: the trusted aggregator."""

from __future__ import annotations

from typing import Any

import torch

from fedtutor.course.exercises._common import Wrong, exercise, expect, expect_tensor


@exercise(
    "05.1",
    hint='grid.search("#hospital_b", "#labels") gives one pointer. Count with (labels == 7).sum() on it; '
    "the result is private until hospital_b releases it.",
    solution="""
    labels_b = grid.search("#hospital_b", "#labels")[0]
    count_ptr = (labels_b == 7).sum()
    grid["hospital_b"].release(count_ptr)
    n_sevens = count_ptr.get().item()
    """,
)
def _check_sevens(n_sevens: Any, grid: Any) -> str:
    labels_ptr = grid.search("#hospital_b", "#labels")[0]
    truth = int((labels_ptr.location.objects[labels_ptr.id] == 7).sum())
    expect(isinstance(n_sevens, int), f"Answer with an int (.item()), got {type(n_sevens).__name__}.")
    expect(n_sevens == truth, f"{n_sevens} is not the number of 7s at hospital_b. Did you search #hospital_b?")
    expect(labels_ptr.private, "hospital_b released all its labels to answer one count: release only the count.")
    return f"hospital_b holds {truth} sevens; you saw one number, not a single label."


@exercise(
    "05.2",
    hint="The sizes are metadata you may read: ptr.shape.get()[0] for each #images pointer. "
    "Each weight is n_k / n, and they add up to 1.",
    solution="""
    sizes = [ptr.shape.get()[0] for ptr in grid.search("#mnist", "#images")]
    fedavg_weights = [n / sum(sizes) for n in sizes]
    """,
)
def _check_fedavg_weights(fedavg_weights: Any, grid: Any) -> str:
    sizes = [p.shape.get()[0] for p in grid.search("#mnist", "#images")]
    expected = [n / sum(sizes) for n in sizes]
    weights = [float(w) for w in fedavg_weights]
    expect(len(weights) == len(expected), f"Give one weight per hospital ({len(expected)}), got {len(weights)}.")
    expect(abs(sum(weights) - 1) < 1e-6, f"The weights add up to {sum(weights):.4f}; divide by the total.")
    worst = max(abs(w - e) for w, e in zip(weights, expected, strict=True))
    shown = [round(w, 4) for w in weights]
    expect(worst < 1e-6, f"Expected {[round(e, 4) for e in expected]} (n_k / n), got {shown}.")
    return "A hospital with 10x the data gets 10x the say in the average."


@exercise(
    "05.3",
    hint="a_ptr.weight and b_ptr.weight are pointers on secure_worker; (3 * wa + 1 * wb) / 4 runs there too. "
    "secure_worker holds public models here, so .get() the result.",
    solution="""
    avg_weight = ((3 * a_ptr.weight + 1 * b_ptr.weight) / 4).get()
    """,
)
def _check_weighted_average(avg_weight: Any, a: torch.nn.Module, b: torch.nn.Module) -> str:
    expect_tensor(avg_weight, "avg_weight", shape=tuple(a.weight.shape))
    expected = (3 * a.weight + b.weight) / 4
    plain = (a.weight + b.weight) / 2
    if torch.allclose(avg_weight, plain, atol=1e-6) and not torch.allclose(plain, expected, atol=1e-6):
        raise Wrong("That is the plain average: weight the first model 3 times as much as the second (3:1).")
    expect(torch.allclose(avg_weight, expected, atol=1e-6), "avg_weight is not (3 * a + 1 * b) / 4 of the weights.")
    return "Averaged on secure_worker: you only saw the average."
