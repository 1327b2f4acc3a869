"""Write notebooks/07-non-iid-data.ipynb (run from the repository root; outputs stay empty)."""

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
# 07 · Non-IID data: when clients are not alike

In notebook 06 every client held a random sample of the digits, and FedAvg worked beautifully.
Real clients are not random samples: one phone's keyboard sees one person's words, one
hospital sees its region's patients. Statisticians call that **non-IID** data (not
independent and identically distributed), and it is the main reason federated learning is
harder than it looks.

**By the end you will be able to**
1. build three partitions, **IID**, McMahan's **pathological shards** and **Dirichlet(α)**, and
   read their label-distribution plots,
2. use a slider to see how **α** controls the skew,
3. measure the **accuracy drop** non-IID data causes, and see *why* (clients pull apart),
4. try two mitigations, **FedProx** and **server momentum**, and judge them honestly,
5. survive **dropouts**: clients that never send their update back.
""")

code("""
import matplotlib.pyplot as plt
import torch

import fedtutor
from fedtutor import federated as fl
from fedtutor.data import describe_partition, dirichlet, iid, label_counts, load_tensors, shards, subset
from fedtutor.exercises import check, hint, solution  # noqa: F401
from fedtutor.models import MLP2NN
from fedtutor.plots import accuracy_curves, label_distribution
from fedtutor.widgets import alpha_explorer

SEED = 0
fedtutor.seed_everything(SEED)
QUICK = fedtutor.quick_mode()
K = 10 if QUICK else 100  # clients
C = 0.3 if QUICK else 0.1  # fraction of clients per round
rounds = 3 if QUICK else 30
n_train = 500 if QUICK else 5000
n_test = 500 if QUICK else 2000  # a fixed random 2,000 test digits: ~300 evaluations stay quick
FEDAVG = {"fraction": C, "epochs": 5, "batch_size": 10, "lr": 0.1}  # notebook 06's FedAvg

x_all, y_all = load_tensors()
x_train, y_train = subset(x_all, y_all, n_train, seed=SEED)  # (n_train, 1, 28, 28), (n_train,)
test = subset(*load_tensors(train=False), n_test, seed=SEED)
""")

md("""
## 1. Three ways to split the same data

- **IID**: shuffle, deal equal parts. Every client looks like the whole dataset.
- **Shards** (McMahan et al.): sort by label, cut 2K shards, give each client two. Most clients
  hold exactly **two digits**; the paper calls it *pathological*.
- **Dirichlet(α)**: for each digit, split its examples between clients in proportions drawn
  from a Dirichlet distribution. α tunes the skew: α=100 is nearly IID, α=0.1 gives each client
  one or two dominant digits *and* very different amounts of data.
""")

code("""
partitions = {
    "IID": iid(y_train, K, seed=SEED),
    "shards (2 per client)": shards(y_train, K, seed=SEED),
    "Dirichlet(alpha=0.1)": dirichlet(y_train, K, alpha=0.1, seed=SEED),
}
fig, axes = plt.subplots(3, 1, figsize=(10, 9))
for ax, (name, parts) in zip(axes, partitions.items(), strict=True):
    print(f"{name:>22}: {describe_partition(y_train, parts)}")
    label_distribution(label_counts(y_train, parts)[:20], title=f"{name}: first {min(K, 20)} clients", ax=ax)
for parts in partitions.values():  # every example lands on exactly one client
    assert torch.equal(torch.cat(parts).sort().values, torch.arange(n_train))
""")

md("""
## 2. A slider for α

First three fixed values, from very skewed to nearly IID; each colour is a digit, each bar a
client of 20:
""")

code("""
fig, axes = plt.subplots(1, 3, figsize=(15, 3.6), sharey=True)
for ax, alpha in zip(axes, (0.1, 1.0, 100.0), strict=True):
    counts = label_counts(y_train, dirichlet(y_train, 20, alpha, seed=SEED))  # (20, 10)
    label_distribution(counts, title=f"alpha = {alpha:g}", ax=ax)
    ax.get_legend().remove()
""")

md("""
Now drag α yourself, from 0.01 to 100 on a log scale, and watch the bars redraw. (The slider
needs a running kernel: in a saved or exported copy of this notebook it stays blank.)
""")

code("""
alpha_explorer(y_train, num_clients=20, seed=SEED, alpha=1.0);
""")

md("""
## 3. The accuracy drop

Same model, same FedAvg settings, same number of rounds: only the split changes.
""")

code("""
def run(parts, strategy=None, label="", **kwargs):
    fedtutor.seed_everything(SEED)
    return fl.run_federated(
        MLP2NN(), fl.make_clients(x_train, y_train, parts), test, strategy or fl.FedAvg(**FEDAVG),
        rounds=rounds, seed=SEED, label=label, **{"live": False, **kwargs},
    )  # live=False: the comparison figures below say more than one live curve per run


histories = {name: run(parts, label=name) for name, parts in partitions.items()}
accuracy_curves(list(histories.values()), title="FedAvg (E=5, B=10) on three partitions");
""")

code("""
def late_accuracy(h, last=5):
    \"\"\"Mean test accuracy over the last rounds: less noisy than the final round alone.\"\"\"
    tail = h["test_acc"][-last:]
    return sum(tail) / len(tail)


for name, h in histories.items():
    print(f"{name:>22}: final {h.final['test_acc']:.2%}, mean of the last 5 rounds {late_accuracy(h):.2%}")
assert late_accuracy(histories["IID"]) > late_accuracy(histories["shards (2 per client)"])
assert late_accuracy(histories["IID"]) > late_accuracy(histories["Dirichlet(alpha=0.1)"])
""")

md("""
## 4. Why: the clients pull in different directions

Start every client from the same global model and look at their updates Δₖ. With IID data
they roughly agree; with shards, a client that only sees 3s and 8s pushes the model towards
"everything is a 3 or an 8", its neighbour towards "everything is a 1 or a 7". The average of
such disagreeing updates is short and its direction is a compromise: **client drift**. We
measure agreement with the cosine similarity between every pair of updates.
""")

code("""
def mean_pairwise_cosine(parts):
    fedtutor.seed_everything(SEED)
    server = fl.Server(MLP2NN(), fl.make_clients(x_train, y_train, parts), fl.FedAvg(**FEDAVG), seed=SEED)
    updates = server.train_clients(1, server.sample(1)[1])
    d = torch.stack([u.delta / u.delta.norm() for u in updates])  # (m, P), unit length
    cos = d @ d.T  # (m, m)
    m = len(d)
    return ((cos.sum() - m) / (m * (m - 1))).item()  # the mean off the diagonal


agreement = {name: mean_pairwise_cosine(parts) for name, parts in partitions.items()}
for name, value in agreement.items():
    print(f"{name:>22}: mean cosine between client updates {value:+.3f}")
assert agreement["IID"] > agreement["shards (2 per client)"]
""")

md("""
## 5. Mitigations: FedProx and server momentum

- **FedProx** (Li et al. 2020) adds μ/2·‖w − w_global‖² to each client's loss: a spring that
  stops a client from wandering far from the global model during its local epochs.
- **Server momentum** (FedAvgM, Hsu et al. 2019) treats the averaged update as a gradient and
  adds momentum on the server: v ← βv + Δ, w ← w + η·v. Consistent directions accumulate
  across rounds; the round-to-round zigzag of non-IID updates cancels.

Both are one argument of the same engine. We try them on the shards, the hardest split.
""")

code("""
shard_parts = partitions["shards (2 per client)"]
mitigations = {
    "FedAvg": histories["shards (2 per client)"],
    "FedProx (mu=0.1)": run(shard_parts, fl.FedProx(mu=0.1, **FEDAVG), "FedProx (mu=0.1)"),
    "server momentum (0.5)": run(shard_parts, fl.FedAvg(**FEDAVG, server_momentum=0.5), "server momentum (beta=0.5)"),
}
accuracy_curves(list(mitigations.values()), title="Shards: FedAvg and two mitigations");
""")

code("""
for name, h in mitigations.items():
    print(f"{name:>22}: mean of the last 5 rounds {late_accuracy(h):.2%}")
fedavg_late = late_accuracy(mitigations["FedAvg"])
prox_late = late_accuracy(mitigations["FedProx (mu=0.1)"])
momentum_late = late_accuracy(mitigations["server momentum (0.5)"])
assert all(len(h) == rounds for h in mitigations.values())
if not QUICK:  # what we measured on this split, in full mode
    assert momentum_late > fedavg_late + 0.01, "server momentum helps here"
    assert abs(prox_late - fedavg_late) < 0.02, "FedProx changes little here"
""")

md("""
What we found (full mode): **server momentum** (β=0.5) lifts the non-IID curve by a couple of
points for the same rounds, at no extra communication. **FedProx** changes little here. That is
not a bug: FedProx was designed for clients that do *different* amounts of local work (slow
phones that finish only part of their epochs), where its spring keeps the stragglers' partial
updates useful; with every client doing the same E=5 epochs, the spring mainly slows everyone
down a little. Larger μ (try 1.0) slows things down more. Mitigations are tools, not magic:
always compare against the plain baseline, as we just did.
""")

md("""
## 6. Dropouts: clients that never come back

Phones go offline, run out of battery or move out of wifi mid-round. The engine's `dropout=p`
makes each selected client fail to return its update with probability p. The server averages
whatever came back (weighted by those clients' examples); a round where *nobody* returns keeps
the model unchanged, and the engine says so.
""")

code("""
dropout_runs = {0.0: histories["IID"]}  # section 3's IID run: nobody dropped out
dropout_runs |= {p: run(partitions["IID"], fl.FedAvg(**FEDAVG, dropout=p), f"dropout {p:.0%}") for p in (0.5, 0.8)}
accuracy_curves(list(dropout_runs.values()), title="IID clients with dropouts");
m = max(1, round(C * K))
for p, h in dropout_runs.items():
    returned = [len(c) for c in h["clients"]]
    print(f"dropout {p:.0%}: clients back per round {returned[:10]}..., total MB {h.megabytes:.0f}")
assert all(len(c) == m for c in dropout_runs[0.0]["clients"])
returned_total = {p: sum(len(c) for c in h["clients"]) for p, h in dropout_runs.items()}
assert returned_total[0.8] <= returned_total[0.5] < returned_total[0.0]
if not QUICK:
    assert returned_total[0.8] < returned_total[0.5]
""")

md("""
With one client per round and a coin-flip dropout, some rounds come back empty. Watch the
messages, and check that the accuracy does not move in those rounds:
""")

code("""
lonely = run(partitions["IID"], fl.FedAvg(**{**FEDAVG, "fraction": 1 / K}, dropout=0.5), "one client, 50% dropout")
acc = lonely["test_acc"]
empty = [r["round"] for r in lonely.records if r["skipped"]]
print("rounds with no update:", empty)
assert empty, "with this seed some round comes back empty"
assert all(acc[t - 1] == acc[t - 2] for t in empty if t > 1)  # the model was kept as it was
""")

md("""
## Recap

- The same data can be split **IID**, into **shards** (two digits per client) or by
  **Dirichlet(α)**; the label-distribution plot shows the difference at a glance, and α
  slides smoothly from very skewed to nearly IID.
- Non-IID clients cost FedAvg accuracy for the same number of rounds, because their updates
  **disagree** (low cosine similarity): each drifts towards its own few digits.
- **FedProx** and **server momentum** are one argument each; whether they help depends on the
  split, the learning rates and the budget: measure, don't assume.
- **Dropouts** shrink each round's average to the clients that returned; a round with none keeps
  the model. Fewer updates per round means slower progress, not wrong results.

## Exercises
""")

md("""
**Exercise 07.1 · Digits per client.** For the shards partition, compute a tensor with the
number of *different* digits each client holds, shape (K,).
""")

code("""
shard_parts = partitions["shards (2 per client)"]
### BEGIN SOLUTION
classes_per_client = (label_counts(y_train, shard_parts) > 0).sum(1)
### END SOLUTION
check("07.1", classes_per_client, y_train, shard_parts)
""")

md("""
**Exercise 07.2 · Choose a skewed α.** Find an α for which a client's most common digit makes
up at least 60% of its data, on average over 20 clients (use the slider of section 2).
""")

code("""
### BEGIN SOLUTION
alpha = 0.1
### END SOLUTION
check("07.2", alpha, y_train)
""")

md("""
**Exercise 07.3 · Expected returns.** With m clients selected per round and dropout
probability p, how many clients do you *expect* to return per round? Compare with the 50% run.
""")

code("""
p = 0.5
### BEGIN SOLUTION
expected_returned = m * (1 - p)
### END SOLUTION
check("07.3", expected_returned, m, p, dropout_runs[0.5])
""")


def build() -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "notebooks/07-non-iid-data.ipynb")
    nbformat.write(build(), out)
    subprocess.run([sys.executable, "-m", "ruff", "format", "--quiet", str(out)], check=True)
    print(f"wrote {out} ({len(CELLS)} cells)")
