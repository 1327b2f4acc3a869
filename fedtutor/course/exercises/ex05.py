"""Exercises of notebook 05: the trusted aggregator (what moved is read from the workers' logs)."""

from __future__ import annotations

from typing import Any

import torch

from fedtutor.course.exercises._common import Wrong, exercise, expect, expect_tensor, given_inputs
from fedtutor.course.exercises.ex03 import commands, expect_start, left


def _digit(g: torch.Generator) -> int:
    return [0, 1, 2, 3, 4, 5, 6, 8, 9][int(torch.randint(0, 9, (1,), generator=g))]  # any digit but the old 7


@exercise(
    "05.1",
    hint='grid.search("#hospital_b", "#labels") gives one pointer. Count with (labels == digit).sum() on it; '
    "the result is private until hospital_b releases it.",
    given=_digit,
)
def _check_count(count: Any, grid: Any, start: Any) -> str:
    start, digit = expect_start(start), given_inputs("05.1")
    hospital = grid["hospital_b"]
    labels = next((e for e in hospital.store.values() if "#labels" in e.tags), None)
    expect(isinstance(count, int), f"Answer with an int (.item()), got {type(count).__name__}.")
    expect(
        labels is not None and labels.private,
        "hospital_b released all its labels to answer one count: release only the count.",
    )
    expect(count == int((labels.value == digit).sum()), f"{count} is not the number of {digit}s at hospital_b.")
    gone = left(hospital, start)
    expect(all(m.nbytes <= 8 for m in gone), "More than one number left hospital_b: only the count may leave.")
    expect(bool(gone), "The count never came from hospital_b: count there, have it release the count, .get() it.")
    return f"hospital_b counted its {digit}s and released one number; its labels stayed private."


def _clinic_sizes(g: torch.Generator) -> tuple[int, int, int]:
    return tuple(int(n) for n in torch.randint(20, 200, (3,), generator=g))


@exercise(
    "05.2",
    hint="The sizes are metadata you may read: ptr.shape.get()[0] for each #images pointer of clinics.search(...). "
    "Each weight is n_k / n, and they add up to 1.",
    given=_clinic_sizes,
)
def _check_fedavg_weights(fedavg_weights: Any, clinics: Any, start: Any) -> str:
    start, sizes = expect_start(start), given_inputs("05.2")
    expected = [n / sum(sizes) for n in sizes]
    try:
        weights = [float(w) for w in fedavg_weights]
    except (TypeError, ValueError):
        raise Wrong(f"fedavg_weights should be a list of numbers, got {fedavg_weights!r}.") from None
    expect(len(weights) == 3, f"Give one weight per clinic (3), got {len(weights)}.")
    expect(abs(sum(weights) - 1) < 1e-6, f"The weights add up to {sum(weights):.4f}; divide by the total.")
    shown = [round(w, 4) for w in weights]
    expect(max(abs(w - 1 / 3) for w in weights) > 1e-6, "Equal weights are the plain mean: weight by sample count.")
    worst = max(abs(w - e) for w, e in zip(weights, expected, strict=True))
    expect(worst < 1e-6, f"{shown} are not n_k / n for the clinics' sizes, in grid order.")
    asked = [w.name for w in clinics.workers if {"shape", "size"} & set(commands(w, start))]
    expect(
        len(asked) == len(clinics.workers),
        "You never asked every clinic for its size since the exercise started: read it through the pointers.",
    )
    return "The weights are n_k / n, from sizes each clinic told you: a clinic with 10x the data gets 10x the say."


def _ratio(g: torch.Generator) -> int:
    return int(torch.randint(2, 6, (1,), generator=g))


@exercise(
    "05.3",
    hint="a_ptr.weight and b_ptr.weight are pointers on secure_worker; (k * wa + wb) / (k + 1) runs there too. "
    "secure_worker holds public models here, so .get() the result.",
    given=_ratio,
)
def _check_weighted_average(avg_weight: Any, a_ptr: Any, b_ptr: Any, start: Any) -> str:
    start, k = expect_start(start), given_inputs("05.3")
    aggregator = a_ptr.location
    a, b = (aggregator.store[p.id].value.weight.detach() for p in (a_ptr, b_ptr))
    expect_tensor(avg_weight, "avg_weight", shape=tuple(a.shape))
    avg = avg_weight.detach()
    expect(not torch.allclose(avg, (a + b) / 2, atol=1e-6), f"That is the plain average: weight a {k} times as much.")
    expect(not torch.allclose(avg, (a + k * b) / (k + 1), atol=1e-6), f"That weights b {k} times, not a.")
    expect(not torch.allclose(avg, k * a + b, atol=1e-6), f"That is k * a + b: divide by the total weight {k + 1}.")
    expect(torch.allclose(avg, (k * a + b) / (k + 1), atol=1e-6), f"avg_weight is not ({k} * a + b) / {k + 1}.")
    gone = left(aggregator, start)
    big = [m for m in gone if m.nbytes > a.numel() * 4]
    expect(not big, f"secure_worker sent you {big[0].nbytes if big else 0} bytes: whole models left it.")
    expect(
        len(gone) == 1 and bool(commands(aggregator, start)),
        f"{len(gone)} objects came back from secure_worker: compute the average there and get only it.",
    )
    return f"secure_worker computed ({k} a + b) / {k + 1}; the average was the only thing that left it."
