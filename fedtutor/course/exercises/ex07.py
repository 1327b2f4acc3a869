"""Exercises of notebook 07: non-IID data."""

from __future__ import annotations

from typing import Any

import torch

from fedtutor.course.exercises._common import exercise, expect, expect_tensor


@exercise(
    "07.1",
    hint="`label_counts(y_train, shard_parts)` is a (clients, 10) table; count the entries above zero per row.",
    solution="""
    classes_per_client = (label_counts(y_train, shard_parts) > 0).sum(1)
    """,
)
def _check_classes_per_client(classes_per_client: Any, labels: torch.Tensor, parts: list[torch.Tensor]) -> str:
    from fedtutor.data import label_counts

    expected = (label_counts(labels, parts) > 0).sum(1)
    expect_tensor(classes_per_client, "classes_per_client", shape=tuple(expected.shape))
    expect(
        not torch.equal(classes_per_client, label_counts(labels, parts).sum(1)),
        "Those are numbers of examples per client; count distinct digits instead (entries > 0).",
    )
    wrong = (classes_per_client != expected).nonzero().flatten().tolist()  # client ids with a wrong count
    expect(
        not wrong,
        f"Client {wrong[0] if wrong else 0} holds {int(expected[wrong[0]]) if wrong else 0} different digits, "
        f"you have {int(classes_per_client[wrong[0]]) if wrong else 0}; count the columns above zero.",
    )
    share = (expected <= 2).float().mean().item()
    return f"{share:.0%} of the clients hold at most two digits."


@exercise(
    "07.2",
    hint="Move the alpha slider: small alpha concentrates each client on few digits. Try values below 0.5.",
    solution="""
    alpha = 0.1
    """,
)
def _check_skewed_alpha(alpha: Any, labels: torch.Tensor) -> str:
    from fedtutor.data import dirichlet, label_counts

    expect(isinstance(alpha, (int, float)) and alpha > 0, f"alpha must be a positive number, got {alpha!r}.")
    counts = label_counts(labels, dirichlet(labels, 20, float(alpha), seed=0)).float()  # (20, 10)
    counts = counts[counts.sum(1) > 0]  # a client with no data has no most common digit
    share = (counts.max(1).values / counts.sum(1)).mean().item()
    expect(
        share >= 0.6,
        f"With alpha={alpha} a client's most common digit is {share:.0%} of its data on average; "
        "make alpha smaller to reach at least 60%.",
    )
    return f"alpha={alpha}: the top digit is {share:.0%} of a client's data on average (IID: about 10-20%)."


@exercise(
    "07.3",
    hint="Each of the m selected clients returns independently with probability 1 - p.",
    solution="""
    expected_returned = m * (1 - p)
    """,
)
def _check_expected_returned(expected: Any, m: int, p: float, history: Any) -> str:
    expect(isinstance(expected, (int, float)), f"Answer with a number, got {type(expected).__name__}.")
    dropped = abs(expected - m * p) < 1e-9 and p != 0.5
    expect(not dropped, f"{expected} is how many drop out; the question asks how many return.")
    expect(abs(expected - m * (1 - p)) < 1e-9, f"{expected} is not it: m = {m} clients, each returns with 1 - p.")
    observed = sum(len(c) for c in history["clients"]) / len(history)
    return f"Expected {expected:.1f} per round; the run averaged {observed:.1f}."
