"""Write notebooks/09-flower-deployment.ipynb (without outputs) from the cells below.

Usage: python scripts/make_nb_09.py    (then execute it, e.g. with nbval, to check it)
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS: list[tuple[str, str]] = []


def md(text: str) -> None:
    CELLS.append(("markdown", text.strip()))


def code(text: str) -> None:
    CELLS.append(("code", text.strip()))


md(r"""
# 09 · From simulation to deployment: the same code on Flower, as real processes

Until now every "client" was a Python object in the notebook's own process, and "sending a model"
was passing a reference. Real federated learning runs on many machines: a server and clients that
are separate programs, talking over a network, any of which can crash. In this notebook we take
the model and the client training code of notebooks 06-07, unchanged, and run them on
[Flower](https://flower.ai), the most widely used open-source federated-learning framework, as
separate operating-system processes on this machine.

**By the end you will be able to**
1. name the processes of a Flower deployment (SuperLink, SuperNodes, ServerApp, ClientApp) and
   what each one does,
2. say what changes between a simulation and a deployment (processes, serialization, ports,
   failures, certificates) and what does not (model, local training, averaging),
3. run FedAvg on Flower from a notebook, get the same numbers as fedtutor's simulation, and watch
   the server carry on when a client process is killed,
4. know which flags turn this loopback demo into a deployment on a real network.

The code lives in `fedtutor/flower.py` (read it alongside; about 700 lines, half of it the process
launcher). It needs the optional extra: `pip install "fedtutor[flower]"`.
""")

code("""
import inspect

import fedtutor
from fedtutor import data, flower, plots
from fedtutor.exercises import check, hint, solution  # noqa: F401
from fedtutor.federated import FedAvg, run_federated
from fedtutor.flower import DeploymentConfig
from fedtutor.models import CNN, count_parameters

QUICK = fedtutor.quick_mode()
SEED = 0
fedtutor.seed_everything(SEED)
flower.require_flower("Notebook 09")  # says how to install Flower if it is missing

from flwr.app import ArrayRecord  # noqa: E402 - only after we know Flower is there

print("Flower", flower.flwr_version(), "| quick mode" if QUICK else "| full mode")
""")

md("""
## 1. One process becomes many

In notebook 06 the server called `train_client(...)` on each client object: an ordinary function
call. A deployment replaces that call by a conversation between programs. Flower (since version
1.13; this is the API it recommends today) splits it into long-running infrastructure and the
apps that run on it:

| process | runs where | does |
|---|---|---|
| `flower-superlink` | the server machine | accepts client connections and runs; hands messages back and forth |
| **ServerApp** (ours) | started by the SuperLink | the FedAvg loop: send the model, collect, average, evaluate |
| `flower-supernode` | each client machine | connects to the SuperLink, holds the client's data, waits for work |
| **ClientApp** (ours) | started by a SuperNode for each message | trains on the local data, replies with new weights |
| `flwr run` | your laptop | submits the app (our two functions) to the SuperLink |

Our deployment puts them all on this machine, talking over the loopback address `127.0.0.1`.
In quick mode: 2 clients and 2 rounds; in full mode: 3 clients and 5 rounds. Midway we will
kill one client process, on purpose.
""")

code("""
clients = 2 if QUICK else 3
rounds = 2 if QUICK else 5
kill_after = 1 if QUICK else 2  # the last client's process dies after this round
config = DeploymentConfig(
    clients=clients,
    rounds=rounds,
    model="2nn",
    partition="iid",
    epochs=1,
    batch_size=10,
    lr=0.05,
    seed=SEED,
    min_clients=1 if QUICK else 2,
    straggler_timeout=5.0 if QUICK else 15.0,
    port=flower.free_port_block(clients + 1),  # 9100 and up, unless something else uses them
)
fig = flower.draw_deployment(config)
""")

md("""
## 2. What does not change: the training code

The ClientApp does three things: unpack the global weights from the message, call
`local_update`, pack the reply. `local_update` is plain PyTorch and calls
`fedtutor.federated.train_client`, the exact function the simulation engine of notebooks 06-07
calls for every client, itself a loop over `training.train_epoch`:
""")

code("""
print(inspect.getsource(flower.local_update))
""")

md("""
The server side is just as short: `fedavg_rounds` sends one `Message` per live client, waits for the
replies, and lets **Flower's own** `FedAvg` strategy average them (`strategy.aggregate_train`),
weighted by each client's number of examples, as in McMahan et al. Then it evaluates the new global
model on the test set with `training.evaluate`, the function notebook 02 used.

## 3. What changes: serialization

Between processes there are no shared tensors, only bytes. Flower carries weights in an
`ArrayRecord`: an ordered dictionary of arrays, each with its dtype, shape and raw bytes. Here is
the 2NN's global model as it travels:
""")

code("""
model = flower.initial_model(config)
record = ArrayRecord(model.state_dict())
for name, array in record.items():
    print(f"{name:<12} {array.dtype:<8} {str(tuple(array.shape)):<12} {len(array.data):>8,} bytes serialized")
payload = sum(array.numpy().nbytes for array in record.values())
print(f"total: {payload:,} bytes = {count_parameters(model):,} parameters x 4 bytes (float32)")
assert payload == count_parameters(model) * 4

# The receiving process rebuilds the same tensors, bit for bit.
restored = record.to_torch_state_dict()
assert all((restored[k] == v).all() for k, v in model.state_dict().items())
""")

md("""
Each array travels in NumPy's `.npy` format: its raw float32 bytes behind a 128-byte header that
records dtype and shape, so the receiver needs no other information. That is 0.8 MB down and
0.8 MB up per client per round for the 2NN (the CNN is 8 times larger, see exercise 1). In the
simulation this cost was a number we *computed*; here it is real traffic.

## 4. What changes: processes and ports

Every process is started by a command line. These are the ones the launcher will run; on a real
network each line would run on its own machine, with the SuperLink's address instead of
`127.0.0.1`. The `--node-config` tells each SuperNode which partition of MNIST is "its own" data.
""")

code("""
for name, command in flower.deployment_commands(config).items():
    print(f"{name:>9}: {' '.join(command)}")
""")

md("""
Two flags deserve a word:

- `--disable-runtime-dependency-installation`: by default `flwr run` asks the SuperLink to create a
  fresh Python environment and install the app's dependencies into it, on every run (with PyTorch
  listed, gigabytes). We already have everything installed, so the apps run right here.
- `--insecure`: no TLS. Fine on loopback, where nothing leaves the machine; never on a real
  network (section 7).

## 5. Run it

`run_deployment` starts the SuperLink and the SuperNodes, submits the app with `flwr run`, prints a
line after every round, and stops every process at the end, also on an error or when you press
the stop button. After round `kill_after` it kills the last client's process with `SIGKILL`: no
goodbye message, exactly like a laptop whose battery died. Expect a few seconds per round: every
message starts a fresh ClientApp process, which imports PyTorch.
""")

code("""
history = flower.run_deployment(config, kill_client_after_round=kill_after)
final = history.records[-1]
assert final["test_acc"] > 0.5  # far above chance (10%) after a few rounds of FedAvg
assert len(history) == rounds  # every round ran, also after the crash
""")

md("""
## 6. The same numbers as the simulation

The client code is the same function, and the batch order comes from the seed, the round and the
client id in both worlds. So fedtutor's in-process engine, given the same partition and the same
starting model, must produce the same accuracies, at least until the crash (which the simulation
does not have). The averaging is done by different code (Flower's in NumPy, fedtutor's in PyTorch),
so we allow for floating-point rounding.
""")

code("""
x_test, y_test = data.load_tensors(train=False)
parts = [flower.partition_for(config, k, config.clients) for k in range(config.clients)]
simulated = run_federated(
    flower.initial_model(config),
    parts,
    (x_test, y_test),
    FedAvg(fraction=1.0, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr),
    rounds=kill_after,
    seed=SEED,
    progress=False,
    live=False,
    label="fedtutor simulation (no crash)",
)
for flwr_round, sim_round in zip(history.records, simulated.records, strict=False):
    print(f"round {sim_round['round']}: Flower {flwr_round['test_acc']:.2%}  simulation {sim_round['test_acc']:.2%}")
    assert abs(flwr_round["test_acc"] - sim_round["test_acc"]) < 0.005
fig = plots.accuracy_curves([history, simulated], title="Flower deployment vs fedtutor simulation")
""")

md("""
## 7. What happened when a client died

Nobody tells the server that a process died: it only notices a reply that never comes. Each round
therefore has a deadline: once the first reply is in, the server waits at most `straggler_timeout`
seconds for the others, then averages what it has and stops asking the silent clients. If fewer
than `min_clients` remain, it stops with an error that says so (try it: set `min_clients` to
`clients` and run again). Flower itself also notices, more slowly: a SuperNode that misses its
heartbeats is marked offline, and messages to it come back as errors.
""")

code("""
for r in history.records:
    lost = f"  lost: client(s) {r['dropped'] or r['lost']}" if r["lost"] else ""
    print(f"round {r['round']}: averaged clients {r['clients']}, accuracy {r['test_acc']:.2%}{lost}")
assert history.records[kill_after]["lost"] == 1  # the round after the crash noticed it
assert final["clients"] == list(range(clients - 1))  # and the survivors finished the job
""")

md("""
The round after the crash took longer (the deadline), the download to the dead client was wasted
(exercise 2), and the survivors' data now weighs more in the average. With IID data that hardly
matters; with the non-IID partitions of notebook 07 a lost client takes its classes with it.

## 8. On a real network: certificates

`--insecure` means every weight travels in clear text and anyone can connect as a client. On a
real network you would:

1. **encrypt** with TLS: create a certificate authority and a server certificate (Flower's docs
   ship a script), then start `flower-superlink --ssl-ca-certfile ca.crt --ssl-certfile server.pem
   --ssl-keyfile server.key` and each `flower-supernode --root-certificates ca.crt --superlink
   SERVER:PORT`;
2. **authenticate clients**: `flower-superlink --enable-supernode-auth`, each SuperNode with its
   own key (`--auth-supernode-private-key`), so only registered clients may join;
3. open one port on the server only: SuperNodes connect *out* to the SuperLink, so clients behind
   home routers need no open ports.

TLS protects the updates on the wire; it does not stop the *server* from seeing each update.
That is what secure aggregation and differential privacy (notebook 08) are for; Flower ships both
as "mods" for the ClientApp.

## What changed, and what did not

| | simulation (06-07) | deployment (this notebook) |
|---|---|---|
| model, local training, FedAvg rule | `train_client`, weighted mean | **the same** |
| a client is | an object in one process | a SuperNode process (+ a ClientApp per message) |
| "sending the model" | passing a reference | serializing an `ArrayRecord` over HTTP |
| addresses | none | `host:port` per process |
| a client failing | a dropout probability | a process that stops answering; deadlines |
| security | nothing leaves the process | TLS certificates, client authentication |
| speed | milliseconds per round | seconds per round (processes, polling) |

## Where to go next

- Flower's tutorials (flower.ai/docs/framework): `flwr new`, `flwr run`, running on several machines
  with Docker, and the built-in strategies (`FedProx`, `FedAdam`, ...: `flwr.serverapp.strategy`).
- Flower Datasets (`flwr-datasets`) for partitioning real datasets across clients.
- Secure aggregation (`SecAgg+`) and differential-privacy mods in Flower, the production versions
  of notebook 08.

## Recap

- A Flower deployment is infrastructure (SuperLink, SuperNodes) plus two apps (ServerApp,
  ClientApp) submitted with `flwr run`; here all of them run as processes on `127.0.0.1`.
- The learning code did not change: the ClientApp calls the same `train_client`, the ServerApp
  averages with Flower's `FedAvg`, and with the same seed the accuracies match the simulation.
- What changed is everything around it: weights are serialized into `ArrayRecord`s, processes
  need ports, failures show up as silence and need deadlines, and real networks need TLS.
""")

md("""
## Exercises

**Exercise 1.** How many bytes does one client upload per round when the model is the CNN?
Build the `ArrayRecord` of a fresh `CNN()` and add up the sizes of its arrays.
""")

code("""
### BEGIN SOLUTION
cnn_record = ArrayRecord(CNN().state_dict())
cnn_upload_bytes = sum(array.numpy().nbytes for array in cnn_record.values())
### END SOLUTION
check("09.1", cnn_upload_bytes)
""")

md("""
**Exercise 2.** How many megabytes (10^6 bytes) did the deployment above move in total, up and
down? Every record of `history.records` has `bytes_up` and `bytes_down`.
""")

code("""
### BEGIN SOLUTION
total_mb = sum(r["bytes_up"] + r["bytes_down"] for r in history.records) / 1e6
### END SOLUTION
check("09.2", total_mb, history)
""")

md("""
**Exercise 3.** In a deployment, each SuperNode only ever loads its own partition. With
`partition="shards"` (notebook 07's pathological split) and 5 clients, how many distinct digits
does client 0 hold? Use `flower.partition_for`, which is what each ClientApp calls.
""")

code("""
### BEGIN SOLUTION
shard_client = flower.partition_for(DeploymentConfig(clients=5, partition="shards", seed=SEED), 0, 5)
digits_of_client_0 = len(shard_client.y.unique())
### END SOLUTION
check("09.3", digits_of_client_0, SEED)
""")

md("""
That is the end of the course: from tensors and autograd to FedAvg, non-IID data, privacy, and
now real processes on a real federated-learning framework. The next step is yours: put the
SuperNodes on other machines.
""")


def build() -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = [new_markdown_cell(src) if kind == "markdown" else new_code_cell(src) for kind, src in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


if __name__ == "__main__":
    path = Path(__file__).resolve().parent.parent / "notebooks" / "09-flower-deployment.ipynb"
    nbformat.write(build(), path)
    print(f"wrote {path}")
