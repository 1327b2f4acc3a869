"""Write notebooks/06-federated-mnist.ipynb (run from the repository root; outputs stay empty)."""

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
# 06 · Federated averaging on MNIST

Notebook 05 averaged three hospitals' models by hand. Now we scale that up to the algorithm
of McMahan et al. (2017), *Communication-Efficient Learning of Deep Networks from
Decentralized Data*: **100 clients**, a fresh random sample of them every **round**, several
**local epochs** on each, and a **weighted average** on the server. The paper's punchline: doing
more work locally (FedAvg) needs many times fewer communication rounds than sending one
gradient per round (FedSGD). We reproduce it.

**By the end you will be able to**
1. name the knobs of FedAvg: clients **K**, client fraction **C**, local epochs **E**, local batch **B**,
2. run one round by hand (sample, train locally, average) and then many with `run_federated`,
3. show that FedSGD is FedAvg with E=1 and B=∞, and that FedAvg needs several times fewer rounds,
4. count the **megabytes** a round moves, and compare federated with central training,
5. see that **non-IID** clients (two digits each) slow FedAvg down,
6. write federated averaging in ten lines with the **pointers** of notebooks 03-05.
""")

code("""
import torch
import torch.nn.functional as F

import fedtutor
from fedtutor import federated as fl
from fedtutor.data import describe_partition, iid, label_counts, load_tensors, shards, subset
from fedtutor.exercises import check, hint, solution  # noqa: F401
from fedtutor.models import MLP2NN, count_parameters
from fedtutor.plots import accuracy_curves, label_distribution
from fedtutor.training import evaluate, fit

SEED = 0
fedtutor.seed_everything(SEED)
QUICK = fedtutor.quick_mode()
K = 20 if QUICK else 100  # clients
C = 0.25 if QUICK else 0.1  # fraction of clients asked each round
TARGET = 0.80 if QUICK else 0.90  # test accuracy we race to
rounds_fedavg = 3 if QUICK else 30
max_rounds_fedsgd = 3 if QUICK else 300
n_train = 1000 if QUICK else 5000
n_test = 500 if QUICK else 10_000
LR_FEDSGD, LR_FEDAVG = 0.3, 0.2  # each method's best learning rate (we tried 0.1 to 1.0)
""")

md("""
## 1. The setting: 100 phones, 50 digits each

We split the MNIST training digits between K clients, **IID**: each client gets a random 50
(so every client sees every digit). The data never moves again: every client keeps its own
tensors, and only model weights travel. (We use the paper's **2NN**, 784-200-200-10: the CNN
reaches higher accuracy but costs about 30 times more compute per example, too much for
hundreds of rounds on a laptop CPU in a few minutes.)
""")

code("""
x_all, y_all = load_tensors()  # (5000, 1, 28, 28), (5000,): MNIST-mini, 500 digits per class
x_train, y_train = subset(x_all, y_all, n_train, seed=SEED)
x_test, y_test = subset(*load_tensors(train=False), n_test, seed=SEED)
test = (x_test, y_test)

parts = iid(y_train, K, seed=SEED)  # K index tensors
clients = fl.make_clients(x_train, y_train, parts)
print(describe_partition(y_train, parts))
print(clients[0])
assert sum(len(c) for c in clients) == n_train
""")

code("""
label_distribution(label_counts(y_train, parts)[:20], title="IID: the digits held by the first 20 clients");
""")

md("""
## 2. The ceiling: central training

If all the digits sat on one machine we would simply train on them. That is the accuracy
federated learning tries to match without ever collecting the data.
""")

code("""
fedtutor.seed_everything(SEED)
central_model = MLP2NN()
central = fit(central_model, (x_train, y_train), test, epochs=1 if QUICK else 10, lr=0.01, batch_size=10, seed=SEED)
central_acc = central.final["test_acc"]
print(f"central 2NN: {central_acc:.2%} test accuracy")
assert central_acc > (0.75 if QUICK else 0.90)
""")

md("""
## 3. One round, by hand

A round of FedAvg has four steps:

1. the server **samples** m = max(C·K, 1) clients,
2. it **sends** them the current global weights w,
3. each client runs **E epochs** of SGD with batch size **B** on its own data and returns
   its update Δₖ = wₖ − w,
4. the server **averages**, weighting client k by its number of examples nₖ:
   w ← w + Σₖ nₖ Δₖ / Σₖ nₖ.

The engine in `fedtutor.federated` exposes each step, so we can run one round in slow motion.
""")

code("""
fedtutor.seed_everything(SEED)
model = MLP2NN()
server = fl.Server(model, clients, fl.FedAvg(fraction=C, epochs=5, batch_size=10, lr=LR_FEDAVG), seed=SEED)

selected, returned = server.sample(1)  # step 1: which clients take part in round 1
print("selected clients:", selected)
updates = server.train_clients(1, returned)  # steps 2-3: each trains a copy of the global model
for u in updates[:3]:
    print(f"client {u.client_id}: {u.num_examples} examples, |Δ| = {u.delta.norm():.3f}, loss {u.train_loss:.3f}")

weights = torch.tensor([u.num_examples for u in updates], dtype=torch.float64)
average = fl.weighted_average([u.delta for u in updates], weights)  # step 4, shape (P,)
fl.set_flat_params(model, fl.flat_params(model) + average)
print(f"after one round: {evaluate(model, *test)[1]:.2%} test accuracy")
assert len(selected) == max(1, round(C * K))
assert average.shape == (count_parameters(model),)
""")

md("""
## 4. FedSGD vs FedAvg

**FedSGD** is the special case E=1, B=∞: each client computes *one* gradient on all its data,
and the weighted average of those steps is exactly one gradient step on the union of the
selected clients' data. **FedAvg** with E=5, B=10 lets each client take 25 steps before
talking to the server. `run_federated` runs the rounds and records a `History`; in JupyterLab
the curve grows live while it trains.

The learning rates are each tuned by hand (as in the paper, every method gets its best
learning rate): a full-batch gradient tolerates larger steps than a batch of 10.
""")

code("""
fedtutor.seed_everything(SEED)
fedsgd = fl.run_federated(
    MLP2NN(), clients, test, fl.FedSGD(fraction=C, lr=LR_FEDSGD), rounds=max_rounds_fedsgd, seed=SEED,
    target=TARGET, stop_at_target=True, label="FedSGD (E=1, B=∞)",
)
fedsgd
""")

code("""
fedtutor.seed_everything(SEED)
fedavg = fl.run_federated(
    MLP2NN(), clients, test, fl.FedAvg(fraction=C, epochs=5, batch_size=10, lr=LR_FEDAVG), rounds=rounds_fedavg,
    seed=SEED, target=TARGET, label="FedAvg (E=5, B=10)",
)
fedavg
""")

code("""
accuracy_curves([fedsgd, fedavg], title="IID clients: rounds to reach the target", target=TARGET);
""")

md("""
FedSGD's curve is jagged: each round is a *single* step along the gradient of only the sampled
clients' digits (500 of them), a noisy estimate, taken with a large learning rate. A smaller
rate smooths the curve but needs even more rounds. FedAvg's clients each take 25 small steps,
and averaging ten such trained models cancels much of the noise.
""")

code("""
r_sgd, r_avg = fedsgd.rounds_to(TARGET), fedavg.rounds_to(TARGET)
print(f"rounds to {TARGET:.0%}: FedSGD {r_sgd}, FedAvg {r_avg}")
sgd_same_rounds = fedsgd["test_acc"][min(len(fedavg), len(fedsgd)) - 1]
print(f"after {len(fedavg)} rounds: FedSGD {sgd_same_rounds:.2%}, FedAvg {fedavg.final['test_acc']:.2%}")
assert fedavg.final["test_acc"] > sgd_same_rounds  # ahead after the same number of rounds
if not QUICK:
    assert r_sgd is not None and r_avg is not None
    assert r_sgd >= 3 * r_avg, "FedAvg should need several times fewer rounds"
    print(f"FedAvg needs {r_sgd / r_avg:.1f}x fewer rounds (the paper, CNN to 99%: 626 vs 20 rounds)")
""")

md("""
## 5. What a round costs: megabytes

Every selected client **downloads** the model and every client that finishes **uploads** its
update: 2 · m · P floats of 4 bytes per round, whatever E and B are. Local epochs are free as
far as the network is concerned, which is the whole point: on phones, the uplink is the
bottleneck, not the CPU.
""")

code("""
P = count_parameters(MLP2NN())
mb_per_round = 2 * max(1, round(C * K)) * P * 4 / 1e6
print(f"2NN: {P:,} parameters = {P * 4 / 1e6:.2f} MB; one round moves {mb_per_round:.1f} MB")
print(f"FedSGD: {fedsgd.megabytes:,.0f} MB in {len(fedsgd)} rounds")
print(f"FedAvg: {fedavg.megabytes:,.0f} MB in {len(fedavg)} rounds")
assert fedavg.records[0]["bytes_up"] + fedavg.records[0]["bytes_down"] == mb_per_round * 1e6
accuracy_curves([fedsgd, fedavg], title="Accuracy per megabyte communicated", target=TARGET, x="mb");
""")

md("""
## 6. A first look at non-IID data

Real clients are not random samples: a phone's photos reflect its owner. The paper's
**pathological non-IID** split sorts the digits by label, cuts them into 2K shards and gives
each client two shards, so most clients hold only **two digits**. Notebook 07 studies this
properly; here we only measure what it costs FedAvg.
""")

code("""
shard_parts = shards(y_train, K, seed=SEED)
print(describe_partition(y_train, shard_parts))
label_distribution(label_counts(y_train, shard_parts)[:20], title="Shards: the digits held by the first 20 clients");
""")

code("""
fedtutor.seed_everything(SEED)
fedavg_noniid = fl.run_federated(
    MLP2NN(), fl.make_clients(x_train, y_train, shard_parts), test,
    fl.FedAvg(fraction=C, epochs=5, batch_size=10, lr=LR_FEDAVG), rounds=rounds_fedavg, seed=SEED, target=TARGET,
    label="FedAvg, non-IID shards",
)
accuracy_curves([fedavg, fedavg_noniid], title="Same algorithm, IID vs non-IID clients", target=TARGET);
""")

code("""
r_noniid = fedavg_noniid.rounds_to(TARGET)
print(f"rounds to {TARGET:.0%}: IID {r_avg}, non-IID {r_noniid or f'not within {len(fedavg_noniid)}'}")
assert sum(fedavg_noniid["test_acc"]) < sum(fedavg["test_acc"])  # below the IID curve on average
if not QUICK:
    assert r_noniid is None or r_noniid > r_avg
""")

md("""
## 7. Federated learning in ten lines, with pointers

The engine is just a fast version of what you did with pointers in notebook 05. Here is an
ordinary MNIST training loop, then the **same loop made federated** with `VirtualWorker`s:
every client holds its data; the model travels to it, trains there, and only the trained
copies travel on to `secure_worker`, where they are averaged.
""")

code("""
# An ordinary loop: the data is here.
model = MLP2NN()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for idx in torch.randperm(len(x_train)).split(10):
    opt.zero_grad()
    F.cross_entropy(model(x_train[idx]), y_train[idx]).backward()
    opt.step()
print(f"ordinary loop, one epoch: {evaluate(model, *test)[1]:.2%}")
""")

code("""
from fedtutor.workers import VirtualWorker, average_models

few = clients[:4]  # four clients, every one of them in every round (C = 1)
secure_worker = VirtualWorker("secure_worker")
data = [(w.hold(c.x), w.hold(c.y)) for w, c in zip([VirtualWorker(f"client{c.id}") for c in few], few, strict=True)]
sizes = [len(c) for c in few]
fedtutor.seed_everything(SEED)
model = MLP2NN()
start = fl.flat_params(model)
""")

code("""
for t in (1, 2):  # ---- federated averaging in ten lines ----
    copies = []
    for c, (x_ptr, y_ptr) in zip(few, data, strict=True):
        model_ptr, opt_ptr = x_ptr.location.send(model, torch.optim.SGD(model.parameters(), lr=0.1))  # download
        order = torch.Generator().manual_seed(fl.derive_seed(SEED, t, c.id))  # the engine's shuffling seed
        for idx in torch.randperm(len(c), generator=order).split(10):
            opt_ptr.zero_grad()
            F.cross_entropy(model_ptr(x_ptr[idx]), y_ptr[idx]).backward()  # runs where the data is
            opt_ptr.step()
        x_ptr.location.release(model_ptr, to=secure_worker)  # the client lets its copy go to the aggregator
        copies.append(model_ptr.move(secure_worker))  # upload
    average_ptr = average_models(copies, weights=sizes)  # weighted by examples, on secure_worker
    secure_worker.release(average_ptr)
    model = average_ptr.get()  # the new global model
print(f"pointer FedAvg, 2 rounds: {evaluate(model, *test)[1]:.2%}")
""")

md("""
The same two rounds through the engine (C=1, E=1, B=10) land on the **same weights**: the engine
uses the same per-client shuffling seeds and the same weighted average, just without the
message passing. It also tells us the traffic: the pointer version moved exactly that.
""")

code("""
engine_model = MLP2NN()
fl.set_flat_params(engine_model, start)
same = fl.run_federated(
    engine_model, few, test, fl.FedAvg(fraction=1.0, epochs=1, batch_size=10, lr=0.1), rounds=2, seed=SEED,
    progress=False, live=False,
)
difference = (fl.flat_params(engine_model) - fl.flat_params(model)).abs().max().item()
print(f"largest weight difference, pointers vs engine: {difference:.1e}; engine moved {same.megabytes:.1f} MB")
assert difference < 1e-5
""")

md("""
## Recap

- FedAvg has four knobs: **K** clients, fraction **C** per round, **E** local epochs, batch **B**.
  A round samples m = max(C·K, 1) clients, trains each from the global weights, and averages
  the updates **weighted by example counts**.
- **FedSGD** (E=1, B=∞) is one big gradient step per round. Letting clients take many local
  steps (FedAvg, E=5, B=10) reached the target in several times fewer rounds, so several
  times fewer megabytes, as McMahan et al. found.
- Federated training gets close to **central** training on pooled data, without pooling it.
- **Non-IID** clients (two digits each) slow FedAvg down; notebook 07 digs into why and what helps.
- The engine is the pointer loop of notebook 05 without the messages: same weights, much faster.

## Exercises
""")

md("""
**Exercise 06.1 · Megabytes for the CNN.** The paper's CNN has many more parameters than the
2NN. With K=100 and C=0.1, how many MB (10⁶ bytes) do the clients **upload** in one round of
FedAvg with the CNN (float32 weights, nobody drops out)?
""")

code("""
from fedtutor.models import CNN

### BEGIN SOLUTION
mb_upload_cnn = 10 * count_parameters(CNN()) * 4 / 1e6
### END SOLUTION
check("06.1", mb_upload_cnn)
""")

md("""
**Exercise 06.2 · Aggregate by hand.** Below are three clients' updates and their sizes. Compute
FedAvg's aggregate with plain tensor operations (no `fl.weighted_average`).
""")

code("""
g = torch.Generator().manual_seed(SEED)
deltas = [torch.randn(5, generator=g) for _ in range(3)]  # three updates, (5,) each
sizes = [10, 30, 60]

### BEGIN SOLUTION
aggregate = sum(n * d for n, d in zip(sizes, deltas, strict=True)) / sum(sizes)
### END SOLUTION
check("06.2", aggregate, deltas, sizes)
""")

md("""
**Exercise 06.3 · How much local work?** Run FedAvg with **E=1**, B=10 (otherwise the settings
of section 4) for `rounds_fedavg` rounds, and find the first round that reaches `TARGET`.
Does one local epoch need more rounds than five?
""")

code("""
### BEGIN SOLUTION
fedtutor.seed_everything(SEED)
fedavg_e1 = fl.run_federated(
    MLP2NN(), clients, test, fl.FedAvg(fraction=C, epochs=1, batch_size=10, lr=LR_FEDAVG), rounds=rounds_fedavg,
    seed=SEED, label="FedAvg (E=1, B=10)", live=False,
)
rounds_e1 = fedavg_e1.rounds_to(TARGET)
### END SOLUTION
check("06.3", fedavg_e1, rounds_e1, TARGET)
""")


def build() -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "notebooks/06-federated-mnist.ipynb")
    nbformat.write(build(), out)
    subprocess.run([sys.executable, "-m", "ruff", "format", "--quiet", str(out)], check=True)
    print(f"wrote {out} ({len(CELLS)} cells)")
