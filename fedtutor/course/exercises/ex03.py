"""Exercises of notebook 03: workers and pointers."""

from __future__ import annotations

from typing import Any

import torch

from fedtutor.course.exercises._common import exercise, expect, expect_tensor, only_worker_value


@exercise(
    "03.1",
    hint="Send `v` to alice, then use the pointer as if it were the tensor: `(v_ptr * v_ptr).sum()` "
    "or `v_ptr @ v_ptr`. Only the final result should travel back.",
    solution="""
    v_ptr = alice.send(torch.arange(6.0))
    dot = (v_ptr @ v_ptr).get()
    """,
)
def _check_remote_dot(dot: Any, alice: Any) -> str:
    only_worker_value(alice)
    expect_tensor(dot, "dot")
    expect(dot.numel() == 1, f"dot should be one number, got shape {tuple(dot.shape)}: sum the products.")
    expect(dot.item() == 55.0, f"dot is {dot.item():g}; 0² + 1² + ... + 5² = 55. Use torch.arange(6.0).")
    replies = alice.log.where(kind="get", sender="alice")
    expect(bool(replies), "alice never sent you a result: bring the dot product back with .get().")
    expect(
        max(m.nbytes for m in replies) <= 4,
        f"alice sent you {max(m.nbytes for m in replies)} bytes at once: that is the whole vector. "
        "Compute on the pointer and get only the single result (4 bytes).",
    )
    return "Only 4 bytes came back: the vector never left alice."


@exercise(
    "03.2",
    hint="Send the tensor to bob first; then send *that pointer* to alice. Keep the pointer alice's send returns.",
    solution="""
    chain = alice.send(bob.send(torch.tensor([42.0])))
    """,
)
def _check_chain(chain: Any) -> str:
    from fedtutor.workers import Pointer

    expect(isinstance(chain, Pointer), f"chain should be a Pointer, got {type(chain).__name__}.")
    expect(chain.location.name == "alice", f"chain points to {chain.location.name}; it should point to alice.")
    inner = chain.location.objects.get(chain.id)
    expect(isinstance(inner, Pointer), f"alice holds a {type(inner).__name__}, not a pointer to bob.")
    expect(inner.location.name == "bob", f"alice's pointer leads to {inner.location.name}, not bob.")
    value = inner.location.objects.get(inner.id)
    expect(
        isinstance(value, torch.Tensor) and torch.equal(value, torch.tensor([42.0])),
        f"bob holds {value!r}, expected tensor([42.]).",
    )
    return "me -> alice -> bob -> tensor([42.]): chain.get().get() would bring it home."


@exercise(
    "03.3",
    hint="Compute the mean through the pointer (`salaries.mean()`), let bob release *that* pointer "
    "with `bob.release(...)`, then `.get()` it. Do not release `salaries` itself.",
    solution="""
    mean_ptr = salaries.mean()
    bob.release(mean_ptr)
    mean_salary = mean_ptr.get().item()
    """,
)
def _check_private_mean(mean_salary: Any, salaries: Any) -> str:
    from fedtutor.workers import Pointer

    expect(isinstance(salaries, Pointer), "Pass the `salaries` pointer as the second argument.")
    expect(isinstance(mean_salary, (int, float)), f"mean_salary should be a number (.item()), got {mean_salary!r}.")
    true_mean = salaries.location.objects[salaries.id].mean().item()
    expect(abs(mean_salary - true_mean) < 1e-3, f"{mean_salary:g} is not the mean salary held by bob.")
    expect(salaries.private, "bob released the raw salaries: everyone can read them now. Release only the mean.")
    return "The mean left bob; the salaries did not."
