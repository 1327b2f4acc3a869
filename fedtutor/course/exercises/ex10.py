"""Exercises of notebook 10: encrypted computation on secret-shared tensors (checked in the logs)."""

from __future__ import annotations

from typing import Any

import torch

from fedtutor.course.exercises._common import exercise, expect, expect_tensor, given_inputs
from fedtutor.course.exercises.ex03 import expect_start, left


def _layer(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = (torch.rand(1, 4, generator=g) * 2 - 1).round(decimals=2)  # (1, 4): alice's features
    w = (torch.rand(4, 2, generator=g) * 2 - 1).round(decimals=2)  # (4, 2): bob's weights
    b = (torch.rand(2, generator=g) * 2 - 1).round(decimals=2)  # (2,): bob's bias
    return x, w, b


@exercise(
    "10.1",
    hint="share_tensor(x_ptr, alice, bob, charlie, crypto_provider=secure_worker), the same for w_ptr and b_ptr; "
    "then y = x_sh @ w_sh + b_sh. alice and bob each release y; y.get() reconstructs it.",
    given=_layer,
)
def _check_encrypted_layer(y: Any, workers: Any, start: Any) -> str:
    start = expect_start(start)
    alice, bob, provider = (next((w for w in workers if w.name == n), None) for n in ("alice", "bob", "secure_worker"))
    expect(None not in (alice, bob, provider), "Pass the workers [alice, bob, charlie, secure_worker].")
    x, w, b = given_inputs("10.1")
    expect_tensor(y, "y", shape=(1, 2))
    expect(not torch.allclose(y, x @ w, atol=1e-3), "y is x @ W without the bias: add b_sh (bob's bias) too.")
    expect(torch.allclose(y, x @ w + b, atol=1e-3), "y is not x @ W + b for alice's features and bob's layer.")
    in_clear = [m for owner in (alice, bob) for m in left(owner, start) if m.detail != "share"]
    expect(
        not in_clear,
        f"{in_clear[0].sender if in_clear else ''} sent its data in the clear ({in_clear[0].kind if in_clear else ''} "
        f"to {in_clear[0].receiver if in_clear else ''}): share it instead, so no single worker sees it.",
    )
    dealt = {m.sender for owner in (alice, bob) for m in owner.log.since(start) if m.detail.startswith("share ")}
    expect({"alice", "bob"} <= dealt, "alice and bob did not both deal shares of their data in this exercise.")
    triples = [m for m in provider.log.since(start) if m.detail.startswith("Beaver triple for matmul")]
    expect(bool(triples), "secure_worker dealt no Beaver triple for a matmul: multiply the shared tensors with @.")
    return (
        "y = x @ W + b, computed on shares: alice and bob only dealt shares, secure_worker dealt "
        f"{len(triples)} triple shares, and neither input left its owner in the clear."
    )
