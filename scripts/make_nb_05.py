"""Write notebooks/05-trusted-aggregator.ipynb (run from the repository root; outputs stay empty)."""

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
# 05 · The trusted aggregator

Notebook 04 ended with a warning: a model update trained on one record gives the record away.
The fix in PySyft's classic tutorials (parts 4 and 5) is an **aggregator**: a worker everyone
trusts, `secure_worker`, receives every participant's model, **averages** them, and only the
average ever reaches the data scientist. This is federated averaging in miniature.

**By the end you will be able to**
1. build a **sandbox** of hospitals, each holding its own share of MNIST with **tags** and a
   **description**, and **search** the grid for data you cannot see,
2. have every hospital **train its own copy** of a model where its data lives,
3. send the copies to `secure_worker`, **average** them there and get back only the average,
4. compare **weighted** (by sample count) and **plain** averaging when hospitals differ in size,
5. compare the federated model with **central training** on all the data pooled.
""")

code("""
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import fedtutor
from fedtutor.data import load_tensors
from fedtutor.exercises import check, hint, solution  # noqa: F401
from fedtutor.models import MLP2NN
from fedtutor.training import batches, evaluate, train_epoch
from fedtutor.workers import VirtualWorker, average_models, draw_workers, me, payload_bytes, sandbox

SEED = 0
fedtutor.seed_everything(SEED)
QUICK = fedtutor.quick_mode()
SIZES = (600, 300, 60) if QUICK else (3000, 1500, 150)  # very different amounts of data
DIGITS = (None, None, (0, 1, 2))  # hospital_c, a small clinic, only sees 0s, 1s and 2s
rounds = 2 if QUICK else 4
local_epochs = 1 if QUICK else 2
BATCH, LR = 32, 0.1
n_test = 1000 if QUICK else 10_000
""")

md("""
## 1. A sandbox of hospitals

`sandbox(...)` builds one worker per hospital, each holding a disjoint random share of the
MNIST training digits (think: scans of handwritten forms). Each object carries **tags** and a
**description**, and it is **private**: the hospital's own data, not yours. The hospitals
differ the way real ones do: two large ones with every kind of case, and a small clinic,
`hospital_c`, whose few patients all wrote 0s, 1s or 2s.
""")

code("""
grid = sandbox(sizes=SIZES, digits=DIGITS, seed=SEED)
secure_worker = VirtualWorker("secure_worker")
print(grid)
print(grid.describe())
""")

md("""
### Searching the grid

You know nothing about these hospitals except that they exist. A **search by tag** returns
pointers to every matching object, across all of them. The pointers tell you where each
object lives and what it is; the values stay where they are.
""")

code("""
images = grid.search("#mnist", "#images")
labels = grid.search("#mnist", "#labels")
for ptr in images:
    print(ptr, "|", ptr.description)
try:
    images[0].get()
except PermissionError as err:
    print("PermissionError:", str(err)[:100], "...")
""")

md("""
Shapes and dtypes are **metadata**, shared freely (you need them to write code against the
data); the pixel values are not. The sample counts tell us how much each hospital holds.
""")

code("""
sizes = [ptr.shape.get()[0] for ptr in images]
print("samples per hospital:", sizes)
assert sizes == list(SIZES)
""")

md("""
Is each hospital's data balanced across digits? Each hospital computes its label **counts**
(an aggregate) and releases just those ten numbers:
""")

code("""
counts = []
for ptr in labels:
    count_ptr = ptr.bincount(minlength=10)
    ptr.location.release(count_ptr)  # the hospital approves releasing 10 counts, not 1 label
    counts.append(count_ptr.get())

fig, ax = plt.subplots(figsize=(7, 3.4))
for k, (ptr, count) in enumerate(zip(labels, counts, strict=True)):
    ax.bar(torch.arange(10) + 0.27 * (k - 1), count, width=0.27, label=f"{ptr.location.name} ({int(count.sum())})")
ax.set(xticks=range(10), xlabel="digit", ylabel="images", title="What each hospital holds (released counts)")
ax.set_ylim(0, 1.3 * max(int(c.max()) for c in counts))  # room for the legend above the bars
ax.legend(ncols=3, loc="upper center")
assert [int(c.sum()) for c in counts] == list(SIZES)
""")

md("""
## 2. Each hospital trains its own copy

The recipe of notebook 04, wrapped in a function: send a copy of the model to where the data
is, loop over mini-batches (we choose the batch order and send only **indices**; the hospital
cuts the batches from its own data), and return a pointer to the trained copy.
""")

code("""
def train_remotely(model, x_ptr, y_ptr, epochs, seed):
    \"\"\"Train a copy of `model` where (x_ptr, y_ptr) live; returns a pointer to the trained copy.\"\"\"
    model_ptr, opt_ptr = x_ptr.location.send(model, torch.optim.SGD(model.parameters(), lr=LR))
    n = x_ptr.shape.get()[0]
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=order).split(BATCH):  # (B,) indices
            opt_ptr.zero_grad()
            F.cross_entropy(model_ptr(x_ptr[idx]), y_ptr[idx]).backward()
            opt_ptr.step()
    return model_ptr
""")

md("""
To watch the models improve without seeing any of them, we send the (public) test set to
`secure_worker`, where the models will be averaged, and have it release one number per model:
its test accuracy.
""")

code("""
x_test, y_test = load_tensors(train=False)
x_test, y_test = x_test[:n_test], y_test[:n_test]  # (n_test, 1, 28, 28), (n_test,)
test_x_ptr, test_y_ptr = secure_worker.send(x_test, y_test)


def test_accuracy(model_ptr):
    \"\"\"secure_worker scores a model it holds and releases only the accuracy.\"\"\"
    acc_ptr = (model_ptr(test_x_ptr).argmax(dim=1) == test_y_ptr).float().mean()
    secure_worker.release(acc_ptr)
    return acc_ptr.get().item()
""")

md("""
## 3. One round, step by step

1. every hospital trains a copy of the global model;
2. every hospital **releases its copy to `secure_worker` only** (`release(ptr, to=...)`)
   and moves it there: the model leaves the hospital but still not towards you;
3. `secure_worker` averages the copies, weighting each by its hospital's sample count;
4. `secure_worker` releases the average, and you get it.
""")

code("""
torch.manual_seed(SEED)
global_model = MLP2NN()
copies = []
for x_ptr, y_ptr in zip(images, labels, strict=True):
    hospital = x_ptr.location
    trained = train_remotely(global_model, x_ptr, y_ptr, local_epochs, seed=SEED)
    hospital.release(trained, to=secure_worker)  # step 2: only towards the aggregator
    copies.append(trained.move(secure_worker))
print(*copies, sep="\\n")
""")

md("""
The copies are now on `secure_worker`, and still private there: you cannot fetch one
hospital's model. Only `secure_worker` decides what leaves.
""")

code("""
try:
    copies[2].get()
except PermissionError as err:
    print("PermissionError:", str(err)[:110], "...")
fig = draw_workers([*grid.workers, secure_worker], title="After one round: the copies sit on secure_worker")
""")

code("""
average_ptr = average_models(copies, weights=sizes)  # step 3: computed on secure_worker
print("hospital models:", [f"{test_accuracy(c):.1%}" for c in copies])
print("their average:  ", f"{test_accuracy(average_ptr):.1%}")
secure_worker.release(average_ptr)  # step 4
global_model = average_ptr.get()
assert isinstance(global_model, MLP2NN)
""")

md("""
## 4. Many rounds: weighted vs plain averaging

A round is those four steps; the average becomes the next round's starting point. We run it
twice: once weighting each hospital by its **sample count** (FedAvg's rule: a hospital with
10× the data gets 10× the say), once with a **plain** mean, where the small clinic, which saw
a few dozen images of three digits, counts as much as the largest hospital.
""")

code("""
def federated_training(weighted):
    torch.manual_seed(SEED)
    model = MLP2NN()
    history = {"average": [], **{w.name: [] for w in grid.workers}}
    for r in range(rounds):
        copies = []
        for x_ptr, y_ptr in zip(images, labels, strict=True):
            trained = train_remotely(model, x_ptr, y_ptr, local_epochs, seed=SEED + r)
            x_ptr.location.release(trained, to=secure_worker)
            copies.append(trained.move(secure_worker))
            history[x_ptr.location.name].append(test_accuracy(copies[-1]))
        average_ptr = average_models(copies, weights=sizes if weighted else None)
        history["average"].append(test_accuracy(average_ptr))
        secure_worker.release(average_ptr)
        model = average_ptr.get()
    return model, history


weighted_model, weighted_history = federated_training(weighted=True)
plain_model, plain_history = federated_training(weighted=False)
print("weighted average:", [f"{a:.1%}" for a in weighted_history["average"]])
print("plain average:   ", [f"{a:.1%}" for a in plain_history["average"]])
""")

md("""
## 5. Central training: the upper bound

For comparison, the thing federated learning avoids: all the data in one place. We take the
hospitals' data straight out of their stores, which only a simulation allows, and train the
same model for the same number of passes over the data.
""")

code("""
pooled_x = torch.cat([grid[p.location.name].objects[p.id] for p in images])  # (N, 1, 28, 28)
pooled_y = torch.cat([grid[p.location.name].objects[p.id] for p in labels])  # (N,)
torch.manual_seed(SEED)
central = MLP2NN()
opt = torch.optim.SGD(central.parameters(), lr=LR)
generator = torch.Generator().manual_seed(SEED)
for _ in range(rounds * local_epochs):
    train_epoch(central, batches(pooled_x, pooled_y, BATCH, generator), opt)
central_acc = evaluate(central, x_test, y_test)[1]
print(f"central: {central_acc:.1%}")
""")

code("""
fig, ax = plt.subplots(figsize=(7.5, 4))
steps = range(1, rounds + 1)
for name in (w.name for w in grid.workers):
    ax.plot(steps, weighted_history[name], "o:", alpha=0.7, label=f"{name}'s copy ({sizes[len(ax.lines)]} images)")
ax.plot(steps, weighted_history["average"], "s-", lw=2.5, label="weighted average (FedAvg)")
ax.plot(steps, plain_history["average"], "^--", lw=2, label="plain average")
ax.axhline(central_acc, color="black", ls="--", lw=1, label="central training, all data pooled")
ax.set(xlabel="round", ylabel="test accuracy", title="Averaging on secure_worker, round by round")
ax.set_xticks(list(steps))
ax.legend(fontsize=8, loc="lower right")
ax.grid(alpha=0.3)
""")

md("""
What the figure shows, and the cell below checks:

- the **weighted** average is ahead of the **plain** one, by far in the first rounds: the plain
  mean gives the small clinic's copy, which only knows three digits, a third of the say. As the
  global model gets good, the clinic's few local steps move it less and the gap closes;
- the small clinic's own copy is the weakest model: it gains the most from the federation;
- **central** training on the pooled data is the reference the federation approaches.
""")

code("""
final_weighted, final_plain = weighted_history["average"][-1], plain_history["average"][-1]
smallest = grid.workers[-1].name
print(f"weighted {final_weighted:.1%} | plain {final_plain:.1%} | central {central_acc:.1%} | "
      f"{smallest}'s own copy {weighted_history[smallest][-1]:.1%}")
mean_weighted = sum(weighted_history["average"]) / rounds
mean_plain = sum(plain_history["average"]) / rounds
print(f"mean over rounds: weighted {mean_weighted:.1%}, plain {mean_plain:.1%}")
assert weighted_history["average"][0] > plain_history["average"][0] + 0.02  # round 1: a clear gap
assert mean_weighted > mean_plain
assert weighted_history[smallest][0] < weighted_history["average"][0]
assert central_acc > final_plain
""")

md("""
## 6. What did you see?

The log of the learner's worker `me` records everything that reached you. From the hospitals:
ten label counts each, no images. From `secure_worker`: accuracies and the averaged models,
never an individual hospital's model.
""")

code("""
model_bytes = payload_bytes(global_model)
for hospital in grid.workers:
    got = me.log.where(sender=hospital.name, receiver="me")
    print(f"from {hospital.name:<11}: {len(got)} messages, {sum(m.nbytes for m in got):,} bytes")
    assert sum(m.nbytes for m in got) == 80  # ten int64 counts
from_aggregator = [m for m in me.log.where(sender="secure_worker", receiver="me") if m.nbytes == model_bytes]
print(f"from secure_worker: {len(from_aggregator)} models of {model_bytes:,} bytes, all of them averages")
assert len(from_aggregator) == 1 + 2 * rounds  # section 3's round, then two runs of `rounds` rounds
""")

md("""
How much must you trust `secure_worker`? Completely: it sees every hospital's model. Notebook
08 removes that trust with **secure aggregation**, where the aggregator learns only the sum.

## Recap

- A **sandbox** builds workers holding tagged, described, private data; a **grid search** by tag
  returns pointers to data you cannot see. Shapes are metadata; values are not.
- Each hospital **trains its own copy** where its data lives.
- A hospital **releases its copy to `secure_worker` only**; the copies are **averaged there**
  (`average_models`) and only the average is released to you.
- **Weighted** averaging (by sample count) beats the plain mean when hospitals differ in size;
  **central** training on pooled data is the reference.

## Exercises
""")

md("""
**Exercise 05.1 (ask for an aggregate).** How many **7s** does `hospital_b` hold? Find its labels
with a grid search, count remotely, have the hospital release only the count, and store the
int in `n_sevens`.
""")

code("""
### BEGIN SOLUTION
labels_b = grid.search("#hospital_b", "#labels")[0]
count_ptr = (labels_b == 7).sum()
grid["hospital_b"].release(count_ptr)
n_sevens = count_ptr.get().item()
### END SOLUTION
check("05.1", n_sevens, grid)
""")

md("""
**Exercise 05.2 (FedAvg's weights).** Compute the weight of each hospital in the weighted
average, in grid order, from the sizes you can read through the pointers: `fedavg_weights`.
""")

code("""
### BEGIN SOLUTION
sizes = [ptr.shape.get()[0] for ptr in grid.search("#mnist", "#images")]
fedavg_weights = [n / sum(sizes) for n in sizes]
### END SOLUTION
check("05.2", fedavg_weights, grid)
""")

md("""
**Exercise 05.3 (average by hand).** Two public models `a` and `b` are on `secure_worker`.
Without `average_models`, compute on `secure_worker` the weighted average of their `weight`
tensors, 3 parts `a` to 1 part `b`, and bring it back as `avg_weight`.
""")

code("""
a, b = nn.Linear(4, 2), nn.Linear(4, 2)
a_ptr, b_ptr = secure_worker.send(a), secure_worker.send(b)
""")

code("""
### BEGIN SOLUTION
avg_weight = ((3 * a_ptr.weight + 1 * b_ptr.weight) / 4).get()
### END SOLUTION
check("05.3", avg_weight, a, b)
""")

md("""
Next: **06 · Federated MNIST**: FedAvg at scale, with many clients, client sampling and the
communication bill, as in McMahan et al. 2017.
""")


def build() -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in CELLS]
    for i, cell in enumerate(nb.cells):
        cell.id = f"nb05-{i:02d}"  # stable ids: regenerating gives a clean diff
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "notebooks/05-trusted-aggregator.ipynb")
    nbformat.write(build(), out)
    subprocess.run([sys.executable, "-m", "ruff", "format", "--quiet", str(out)], check=True)
    print(f"wrote {out} ({len(CELLS)} cells)")
