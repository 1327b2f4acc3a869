"""Exercises of notebook 03: workers and pointers.

How the work was done is read from the workers' message logs, from a mark the exercise cell
takes (``start = mark()``): earlier attempts never count for or against the learner. The helpers
at the top are shared with notebooks 04, 05 and 10.
"""

from __future__ import annotations

from typing import Any

import torch

from fedtutor.course.exercises._common import Wrong, exercise, expect, expect_tensor, given_inputs


def expect_start(start: Any) -> int:
    expect(isinstance(start, int) and start > 0, "Pass `start` (the mark the exercise cell took) to check.")
    return start


def expect_worker(worker: Any, name: str) -> Any:
    from fedtutor.workers import VirtualWorker

    expect(isinstance(worker, VirtualWorker), f"Pass the worker {name} itself, got {type(worker).__name__}.")
    return worker


def left(worker: Any, start: int, kinds: tuple[str, ...] = ("get", "copy", "move")) -> list:
    """Messages since ``start`` in which ``worker`` gave an object away (to you or another worker)."""
    return [m for m in worker.log.since(start) if m.sender == worker.name and m.kind in kinds]


def commands(worker: Any, start: int) -> list[str]:
    """The names of the commands ``worker`` ran since ``start``."""
    return [m.detail for m in worker.log.since(start) if m.kind == "command" and m.receiver == worker.name]


def _vector(g: torch.Generator) -> torch.Tensor:
    n = int(torch.randint(5, 9, (1,), generator=g))
    return torch.randint(-9, 10, (n,), generator=g).float()  # (n,) small integers, never printed


@exercise(
    "03.1",
    hint="Use `numbers` as if it were the tensor: `numbers @ numbers` (or `(numbers * numbers).sum()`) runs on "
    "alice; only that one result should come back with .get().",
    given=_vector,
)
def _check_remote_dot(dot: Any, alice: Any, start: Any) -> str:
    start, alice = expect_start(start), expect_worker(alice, "alice")
    v = given_inputs("03.1")
    expect_tensor(dot, "dot")
    expect(dot.numel() == 1, f"dot should be one number, got shape {tuple(dot.shape)}: sum the products too.")
    expect(dot.item() == (v @ v).item(), f"dot is {dot.item():g}: not the dot product of alice's vector with itself.")
    gone = left(alice, start)
    big = [m for m in gone if m.nbytes > 4]
    expect(
        not big,
        f"alice sent you {big[0].nbytes if big else 0} bytes at once: that is her whole vector. Compute on "
        "the pointer and bring back only the single result (4 bytes).",
    )
    ran = commands(alice, start)
    expect(bool(ran) and bool(gone), "alice computed nothing and sent nothing since the exercise started: "
           "compute through the pointer, then .get() the result.")  # fmt: skip
    return f"alice ran {', '.join(ran)}; only {gone[-1].nbytes} bytes came back: the vector never left her."


def _number(g: torch.Generator) -> torch.Tensor:
    return torch.randint(10, 100, (1,), generator=g).float()  # (1,)


@exercise(
    "03.2",
    hint="Send the tensor to bob first; then send *that pointer* to alice. Keep the pointer alice's send returns.",
    given=_number,
)
def _check_chain(chain: Any, start: Any) -> str:
    from fedtutor.workers import Pointer

    start = expect_start(start)
    expect(isinstance(chain, Pointer), f"chain should be a Pointer, got {type(chain).__name__}.")
    expect(chain.location.name == "alice", f"chain points to {chain.location.name}; it should point to alice.")
    inner = chain.location.objects.get(chain.id)
    expect(isinstance(inner, Pointer), f"alice holds a {type(inner).__name__}, not a pointer to bob.")
    expect(inner.location.name == "bob", f"alice's pointer leads to {inner.location.name}, not bob.")
    value = inner.location.objects.get(inner.id)
    expect(
        isinstance(value, torch.Tensor) and torch.equal(value, given_inputs("03.2")),
        "bob holds something else than your number given('03.2'): send that tensor to bob.",
    )
    relayed = [m for m in chain.location.log.since(start) if m.kind == "send" and m.detail.endswith(f"#{inner.id}")]
    expect(bool(relayed), "alice received no pointer since the exercise started: build the chain in this cell.")
    return "me -> alice -> bob -> your number: chain.get().get() would bring it home."


def _payroll(g: torch.Generator) -> torch.Tensor:
    n = int(torch.randint(5, 10, (1,), generator=g))
    return (torch.rand(n, generator=g) * 4000 + 2000).round()  # (n,) monthly salaries


@exercise(
    "03.3",
    hint="Compute the mean through the pointer (`payroll.mean()`), let bob release *that* pointer with "
    "`bob.release(...)`, then `.get()` it. Do not release `payroll` itself.",
    given=_payroll,
)
def _check_private_mean(mean_salary: Any, payroll: Any, start: Any) -> str:
    from fedtutor.workers import Pointer

    start = expect_start(start)
    expect(isinstance(payroll, Pointer), "Pass the `payroll` pointer as the second argument.")
    bob = payroll.location
    expect(isinstance(mean_salary, (int, float)), f"mean_salary should be a number (.item()), got {mean_salary!r}.")
    truth = given_inputs("03.3").mean().item()
    expect(abs(mean_salary - truth) < 1e-2, f"{mean_salary:g} is not the mean of bob's payroll.")
    expect(payroll.private, "bob released the raw salaries: everyone can read them now. Release only the mean.")
    released = [m for m in bob.log.since(start) if m.kind == "release"]
    expect(bool(released), "bob released nothing since the exercise started: have him release the mean.")
    expect(all(m.nbytes <= 4 for m in left(bob, start)), "more than one number left bob: only the mean may leave.")
    if not any(m.kind == "get" and m.nbytes == 4 for m in left(bob, start)):
        raise Wrong("The mean never came from bob: compute it through the pointer, release it, then .get() it.")
    return "The mean matches bob's payroll; bob released one number and the salaries stayed private."
