"""Write notebooks/03-workers-and-pointers.ipynb (run from the repository root; outputs stay empty)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS: list[tuple[str, str]] = []


def md(text: str) -> None:
    CELLS.append(("md", text.strip()))


def code(text: str) -> None:
    CELLS.append(("code", text.strip()))


md("""
# 03 · Virtual workers and pointers

In federated learning the data stays where it was made: on a phone, in a hospital. You, the
data scientist, never get a copy. So how do you compute on it? You send *instructions* to the
machine that holds it, and get back a **pointer**: a handle on the result, which stays there.

This notebook builds that idea with `fedtutor.workers`: *virtual* workers that live in this
Python process but behave like remote machines, with a log of every message they exchange.

**By the end you will be able to**
1. create workers (`bob`, `alice`) and **send** them tensors,
2. read a **pointer**: where the object lives (location), its remote **id**, who holds the handle (owner),
3. **compute through pointers** and **get** results back, and read the error when two pointers live on
   different workers,
4. build **pointer chains** (bob, then alice) and **move** objects between workers,
5. see **what a worker holds**, and why deleting a pointer frees the remote object,
6. read the **message log** (bytes moved) and keep data **private** so `get` is refused.
""")

code("""
import gc

import torch

import fedtutor
from fedtutor.exercises import check, hint, solution  # noqa: F401
from fedtutor.workers import PointerError, VirtualWorker, draw_workers, me

SEED = 0
fedtutor.seed_everything(SEED)
QUICK = fedtutor.quick_mode()  # this notebook is small either way
""")

md("""
## 1. Workers

A `VirtualWorker` stands for another machine. It has a name, the objects it holds (in a dict
keyed by id) and a log of the messages it sent and received. The course uses the names of
PySyft's classic tutorials: **bob** and **alice**. You are **`me`**, the learner's own worker.
""")

code("""
bob = VirtualWorker("bob")
alice = VirtualWorker("alice")
print(bob, alice, me, sep="\\n")
""")

md("""
## 2. Sending a tensor, and the anatomy of a pointer

`bob.send(x)` ships a *copy* of `x` to bob and hands you a pointer to it. (PySyft wrote
`x.send(bob)`, which needed patching torch itself; `fedtutor` never does that, so the worker
receives: `bob.send(x)`, or equivalently `send(x, bob)`.)
""")

code("""
x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
x_ptr = bob.send(x)
x_ptr
""")

md("""
The repr reads `owner -> location:#id`. Three facts make a pointer:

| field | here | meaning |
|---|---|---|
| `location` | bob | the worker that holds the object |
| `id` | a number | the object's key in bob's store |
| `owner` | me | who holds this handle |

Bob now holds the tensor; you hold only the handle.
""")

code("""
print("location:", x_ptr.location.name, "| id:", x_ptr.id, "| owner:", x_ptr.owner.name)
print(bob.objects)
assert x_ptr.location is bob and x_ptr.owner is me
assert torch.equal(bob.objects[x_ptr.id], x)
""")

md("""
## 3. Computing through pointers

Use the pointer as if it were the tensor. Operators, `torch.*` functions and tensor methods all
work: each one becomes a **command** to bob, bob runs it on *his* tensor, stores the result and
replies with a new pointer. Nothing but the command travels.

How does `torch.exp(x_ptr)` know to go to bob? PyTorch asks any argument that defines
`__torch_function__` to handle the call; `Pointer` defines it and forwards the call to the
location. No patching: just a protocol PyTorch provides.
""")

code("""
y_ptr = x_ptr + x_ptr  # an operator
z_ptr = torch.exp(x_ptr)  # a torch function
s_ptr = (x_ptr * 2).sum()  # a method on a result
print(y_ptr, z_ptr, s_ptr, sep="\\n")
""")

md("""
To see a value you must ask for it: `get()` brings it back and bob forgets it (the pointer is
then used up). `copy()` brings a copy and bob keeps his.
""")

code("""
total = s_ptr.get()
print("sum of 2x:", total)
assert total.item() == 30.0 and s_ptr.id not in bob.objects
assert torch.equal(z_ptr.copy(), torch.exp(x)) and z_ptr.id in bob.objects
try:
    s_ptr.get()
except PointerError as err:
    print("PointerError:", err)
""")

md("""
### When pointers live on different workers

A worker can only compute on what it holds. Adding bob's tensor to alice's tensor has no
place to run, so you get an error that says so, and what to do instead.
""")

code("""
a_ptr = alice.send(torch.ones(5))
try:
    x_ptr + a_ptr
except PointerError as err:
    message = str(err)
    print("PointerError:", message)
assert "bob" in message and "alice" in message
""")

md("""
## 4. Pointer chains and moving objects

A pointer is an object too, so you can send *the pointer* to alice. Now alice holds a
pointer to bob's tensor, and you hold a pointer to alice's pointer: a **chain**
`me -> alice -> bob`. A command sent down the chain is forwarded by alice to bob. This is how
an intermediary can relay work without ever holding the data.
""")

code("""
chain_ptr = alice.send(bob.send(torch.tensor([10.0, 20.0])))
print(chain_ptr)
doubled = chain_ptr * 2  # runs on bob, relayed by alice
fig = draw_workers([bob, alice], title="Who holds what: alice's pointers lead to bob's tensors")
""")

md("""
Getting the value back takes two steps: the first `get()` returns alice's pointer to bob,
the second brings the tensor.
""")

code("""
inner = chain_ptr.get()
print("first get: ", inner)
value = inner.get()
print("second get:", value)
assert torch.equal(value, torch.tensor([10.0, 20.0]))
assert torch.equal(doubled.get().get(), torch.tensor([20.0, 40.0]))
""")

md("""
`move` asks the location to send the object straight to another worker, without passing
through you. Your pointer follows it.
""")

code("""
m_ptr = bob.send(torch.arange(3.0))
m_ptr.move(alice)
print(m_ptr)
assert m_ptr.location is alice and m_ptr.id in alice.objects and m_ptr.id not in bob.objects
""")

md("""
## 5. What a worker holds, and cleaning up

Every result of a command stays on the worker until someone frees it. `describe()` lists
what a worker holds. When a pointer is deleted (or garbage-collected because nothing uses it
any more), it sends a **delete** message so the worker frees the object: otherwise a long
training loop would fill the worker's memory with intermediate results.
""")

code("""
print(bob.describe())
""")

code("""
t_ptr = bob.send(torch.zeros(1000))
t_id = t_ptr.id
assert t_id in bob.objects
del t_ptr
gc.collect()
print("still held?", t_id in bob.objects, "| last message:", bob.log[-1])
assert t_id not in bob.objects and bob.log[-1].kind == "delete"
""")

md("""
## 6. The message log: what moved?

Every send, command, reply, move and delete is logged on both workers, with the number of
**bytes of tensor payload** it carried (`numel * element_size`: 4 bytes per float32). Commands
made of pointers carry none: that is the whole point.
""")

code("""
bob.log.clear()
big_ptr = bob.send(torch.randn(1000))  # 4,000 bytes go to bob
mean_ptr = (big_ptr * 3 - 1).abs().mean()  # four commands, no payload
mean = mean_ptr.get()  # 4 bytes come back
print(bob.log.summary())
assert bob.log.nbytes(kind="send") == 4000 and bob.log.nbytes(kind="command") == 0
assert bob.log.nbytes(sender="bob") == 4
""")

code("""
fig = bob.log.plot("bob's traffic: the data went in once, only the answer came out")
""")

md("""
## 7. Private data

So far nothing stops you from calling `get()` on bob's data. In real federated learning the
data *belongs* to bob: he decides what may leave. A worker **holds** its own data (it never
travelled, so there is no message) and can mark it **private**. A private object cannot be
retrieved, and neither can anything computed from it: the result of every command inherits
privacy from its inputs.
""")

code("""
salaries = bob.hold(
    torch.tensor([3100.0, 4200.0, 2800.0, 5100.0, 3900.0]),
    private=True,
    tags=["#salaries"],
    description="bob's employees' monthly salaries",
)
print(salaries)
try:
    salaries.get()
except PermissionError as err:
    print("PermissionError:", err)
""")

md("""
The obvious escapes are refused too: `(salaries * 1)`, `salaries.clone()`, `salaries.sum()`
are all computed from private data, and moving the data to a worker you control is refused.
""")

code("""
escapes = {
    "(salaries * 1).get()": lambda: (salaries * 1).get(),
    "salaries.clone().get()": lambda: salaries.clone().get(),
    "salaries.sum().get()": lambda: salaries.sum().get(),
    "salaries.move(alice)": lambda: salaries.move(alice),
}
for name, escape in escapes.items():
    try:
        escape()
        raise AssertionError(f"{name} leaked bob's data")
    except PermissionError:
        print(f"refused: {name}")
""")

md("""
What may leave is the data owner's decision: bob can **release** one object, typically an
aggregate, the way today's privacy platforms have the data owner approve each request. The
release is logged, so it is visible. Here bob releases the *maximum* salary and nothing else.
""")

code("""
max_ptr = salaries.max()
bob.release(max_ptr)
top = max_ptr.get()
print("highest salary:", top.item(), "| logged:", bob.log.where(kind="release")[-1])
assert top.item() == 5100.0 and salaries.private
""")

md("""
## Recap

- A **worker** holds objects by id and logs its messages; `bob.send(x)` gives you a **pointer**
  (`owner -> location:#id`).
- Operators, `torch.*` functions and methods on pointers run **on the location** and return
  new pointers (`__torch_function__`, no patching). `get()` retrieves, `copy()` copies.
- Pointers on different workers cannot be combined; `move` sends an object directly between
  workers; sending a pointer builds a **chain** (`.get().get()`).
- Deleting a pointer frees the remote object; `describe()` shows what a worker holds.
- The **log** shows every message and its bytes: commands carry none.
- **Private** data, and everything computed from it, stays with its owner until the owner
  **releases** a result.

## Exercises
""")

md("""
**Exercise 03.1 (compute without looking).** Send `torch.arange(6.0)` to alice and compute its dot
product with itself *on alice*. Store the result, as a local tensor, in `dot`. Only the result
may come back.
""")

code("""
### BEGIN SOLUTION
v_ptr = alice.send(torch.arange(6.0))
dot = (v_ptr @ v_ptr).get()
### END SOLUTION
check("03.1", dot, alice)
""")

md("""
**Exercise 03.2 (a chain).** Build `chain`: a pointer to alice, who holds a pointer to bob, who
holds `torch.tensor([42.0])`.
""")

code("""
### BEGIN SOLUTION
chain = alice.send(bob.send(torch.tensor([42.0])))
### END SOLUTION
check("03.2", chain)
""")

md("""
**Exercise 03.3 (the owner decides).** Compute bob's *mean* salary through the `salaries` pointer,
have bob release just that, and store it as a Python float in `mean_salary`.
""")

code("""
### BEGIN SOLUTION
mean_ptr = salaries.mean()
bob.release(mean_ptr)
mean_salary = mean_ptr.get().item()
### END SOLUTION
check("03.3", mean_salary, salaries)
""")

md("""
Next: **04 · Remote training**: the same pointers, but the commands are a model's forward pass,
`backward()` and an optimizer step. You will train a model on data you never see.
""")


def build() -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in CELLS]
    for i, cell in enumerate(nb.cells):
        cell.id = f"nb03-{i:02d}"  # stable ids: regenerating gives a clean diff
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "notebooks/03-workers-and-pointers.ipynb")
    nbformat.write(build(), out)
    subprocess.run([sys.executable, "-m", "ruff", "format", "--quiet", str(out)], check=True)
    print(f"wrote {out} ({len(CELLS)} cells)")
