"""Write notebooks/04-remote-training.ipynb (run from the repository root; outputs stay empty)."""

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
# 04 · Remote training: a model trained on data you never see

In notebook 03 pointers computed sums and products. A training step is nothing more: a forward
pass, a loss, `backward()`, an optimizer step. Run those through pointers and the model trains
*where the data is*. This is the first half of federated learning.

**By the end you will be able to**
1. send a **model and its optimizer** to a worker and run **forward, backward and step remotely**,
2. write the remote training loop, which reads almost exactly like the ordinary one,
3. train one model on data **split between bob and alice**, moving the model instead of the data,
4. prove with the **message log** that the data never moved, and what each step cost,
5. keep the data **private** and have its owner **release** the trained model,
6. explain why a shared **gradient or model update still leaks** the data (the reason for notebook 05).
""")

code("""
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import fedtutor
from fedtutor.exercises import check, hint, solution  # noqa: F401
from fedtutor.models import CNN, TinyLinear, count_parameters  # noqa: F401
from fedtutor.workers import VirtualWorker, payload_bytes

SEED = 0
generator = fedtutor.seed_everything(SEED)
QUICK = fedtutor.quick_mode()
steps = 40 if QUICK else 100  # training steps per loop
LR = 0.1
""")

md("""
## 1. The toy problem and who holds it

The data follows a line we pretend not to know: `y = 3·x₁ − 2·x₂ + 1` plus a little noise.
Bob has 60 points, alice 40. We generate them here only to simulate bob's and alice's
machines: the moment they are **held** by the workers, the rest of the notebook works only
through pointers.
""")

code("""
TRUE_W, TRUE_B = torch.tensor([3.0, -2.0]), 1.0


def make_points(n):
    x = torch.randn(n, 2, generator=generator)  # (n, 2)
    y = x @ TRUE_W.unsqueeze(1) + TRUE_B + 0.1 * torch.randn(n, 1, generator=generator)  # (n, 1)
    return x, y


bob, alice = VirtualWorker("bob"), VirtualWorker("alice")
bob_x, bob_y = (bob.hold(t, private=False) for t in make_points(60))
alice_x, alice_y = (alice.hold(t, private=False) for t in make_points(40))
print(bob_x, bob_y, alice_x, alice_y, sep="\\n")
""")

md("""
(`private=False` for now: section 4 closes that door.) For comparison, here is the ordinary
loop, as in notebook 01, on a copy of bob's data *as if* we had it:
""")

code("""
x_local, y_local = bob_x.copy(), bob_y.copy()  # allowed only because the data is public for now

torch.manual_seed(SEED)
local_model = TinyLinear(2, 1)
opt = torch.optim.SGD(local_model.parameters(), lr=LR)
for _ in range(steps):
    opt.zero_grad()
    loss = F.mse_loss(local_model(x_local), y_local)
    loss.backward()
    opt.step()
print(f"trained here: w = {local_model.linear.weight.data.flatten().tolist()}, loss {loss.item():.4f}")
""")

md("""
## 2. The same loop, through pointers

Send the model and its optimizer **together** (`bob.send(model, opt)`): they travel as one
package, so bob's optimizer updates bob's copy of the model. Then the loop is the loop above
with `_ptr` names. `model_ptr(x_ptr)` runs the forward pass on bob, `loss_ptr.backward()`
computes gradients on bob, `opt_ptr.step()` updates bob's weights.
""")

code("""
torch.manual_seed(SEED)
model = TinyLinear(2, 1)
opt = torch.optim.SGD(model.parameters(), lr=LR)
model_ptr, opt_ptr = bob.send(model, opt)
for _ in range(steps):
    opt_ptr.zero_grad()
    loss_ptr = F.mse_loss(model_ptr(bob_x), bob_y)
    loss_ptr.backward()
    opt_ptr.step()
remote_model = model_ptr.get()
print(f"trained on bob: w = {remote_model.linear.weight.data.flatten().tolist()}")
print(f"our own copy:   w = {model.linear.weight.data.flatten().tolist()} (untouched: bob trained his)")
""")

md("""
Same seed, same data, same steps: the weights are not just close, they are **identical**,
because bob ran exactly the code you would have run here.
""")

code("""
assert torch.equal(remote_model.linear.weight, local_model.linear.weight)
assert torch.equal(remote_model.linear.bias, local_model.linear.bias)
assert not torch.equal(model.linear.weight, remote_model.linear.weight)
""")

md("""
## 3. One model, two data owners

Now the model visits both workers in turn, as in PySyft's classic tutorial part 2: send it to
bob, take a step on bob's data, get it back, send it to alice, take a step on hers. The data
stays put; the **model** travels.
""")

code("""
torch.manual_seed(SEED)
model = TinyLinear(2, 1)
remote_data = [(bob_x, bob_y), (alice_x, alice_y)]
losses = {"bob": [], "alice": []}
bob.log.clear()  # count this section's messages only

for _ in range(steps):
    for x_ptr, y_ptr in remote_data:
        worker = x_ptr.location
        model_ptr, opt_ptr = worker.send(model, torch.optim.SGD(model.parameters(), lr=LR))
        opt_ptr.zero_grad()
        loss_ptr = F.mse_loss(model_ptr(x_ptr), y_ptr)
        loss_ptr.backward()
        opt_ptr.step()
        model = model_ptr.get()
        losses[worker.name].append(loss_ptr.get().item())

w, b = model.linear.weight.data.flatten(), model.linear.bias.item()
print(f"learned y = {w[0]:.3f} x1 + {w[1]:.3f} x2 + {b:.3f}   (truth: 3 x1 - 2 x2 + 1)")
assert torch.allclose(w, TRUE_W, atol=0.1) and abs(b - TRUE_B) < 0.1
""")

code("""
fig, ax = plt.subplots(figsize=(6, 3.6))
for name, curve in losses.items():
    ax.plot(curve, label=f"on {name}'s data")
ax.set(xlabel="step", ylabel="MSE loss", yscale="log", title="One model, trained where the data is")
ax.legend()
ax.grid(alpha=0.3)
""")

md("""
### What moved? The log is the proof

Bob's data is 60 × 3 floats = 720 bytes. Every message bob sent is in his log. If the data had
left bob, a message of at least that size would be there.
""")

code("""
print(bob.log.summary())
data_bytes = payload_bytes(bob.objects[bob_x.id]) + payload_bytes(bob.objects[bob_y.id])
model_bytes = payload_bytes(model)  # 2 weights + 1 bias = 12 bytes
per_step = bob.log.nbytes(sender="bob") / steps
print(f"bob holds {data_bytes} bytes of data; he sent {per_step:.0f} bytes per step: "
      f"the model ({model_bytes} B) and the loss (4 B)")
assert max(m.nbytes for m in bob.log.where(sender="bob")) < data_bytes
assert bob.log.nbytes(sender="bob") == steps * (model_bytes + 4)
""")

code("""
fig = bob.log.plot(f"bob's traffic over {steps} steps: the model went back and forth")
ax = fig.axes[0]
ax.axvline(data_bytes, color="gray", linestyle="--", label=f"bob's data: {data_bytes} B, never sent")
ax.legend(loc="lower right")
""")

md("""
For this toy model a step costs a few bytes. For the MNIST CNN of notebook 02, with its
1.66 million parameters, every trip of the model is 6.7 MB: that is why federated learning
counts communication so carefully (exercise 04.2).

## 4. Private data: the owner decides what leaves

With `private=False` nothing stopped us from copying bob's data (we did, in section 1!). Real
data owners mark their data **private**. Then `get()` and `copy()` are refused, and so is
anything computed from the data, including a model trained on it. Bob must **release** the
trained model explicitly.
""")

code("""
carefully = VirtualWorker("bob_private")
secret_x, secret_y = (carefully.hold(t, private=True, tags=["#toy"]) for t in make_points(60))
for escape in (lambda: secret_x.get(), lambda: (secret_x * 1).get(), lambda: secret_x.mean().get()):
    try:
        escape()
        raise AssertionError("the private data leaked")
    except PermissionError as err:
        refusal = str(err)
print("refused:", refusal)
""")

code("""
torch.manual_seed(SEED)
model = TinyLinear(2, 1)
model_ptr, opt_ptr = carefully.send(model, torch.optim.SGD(model.parameters(), lr=LR))
for _ in range(steps):
    opt_ptr.zero_grad()
    F.mse_loss(model_ptr(secret_x), secret_y).backward()
    opt_ptr.step()
print(model_ptr)  # the trained model carries information about the data: it is private now
try:
    model_ptr.get()
except PermissionError as err:
    print("PermissionError:", str(err)[:110], "...")
""")

code("""
carefully.release(model_ptr)  # the data owner approves: this model may leave
trained = model_ptr.get()
print("released and retrieved:", trained.linear.weight.data.flatten().tolist())
print(carefully.log.where(kind="release")[-1])
assert torch.allclose(trained.linear.weight.flatten(), TRUE_W, atol=0.1)
""")

md("""
## 5. Why a shared gradient still leaks

The data never moved, yet what came back was *computed from* it. How much does a gradient or
a model update reveal? For a linear layer and **one** example it reveals **everything**: the
gradient of the weight is `(dL/dout) · x` and the gradient of the bias is `dL/dout`, so
dividing one by the other gives back `x` exactly.
""")

code("""
patient = VirtualWorker("patient")
record = patient.hold(torch.tensor([[0.7, -1.3, 2.1]]), private=True)  # (1, 3): one private record
target = patient.hold(torch.tensor([[1.0]]), private=True)
probe_ptr = patient.send(TinyLinear(3, 1))
F.mse_loss(probe_ptr(record), target).backward()
grad_w, grad_b = probe_ptr.linear.weight.grad, probe_ptr.linear.bias.grad
patient.release(grad_w), patient.release(grad_b)  # "it's only a gradient", thinks the patient
recovered = grad_w.get() / grad_b.get()  # (1, 3)
print("recovered:", recovered.flatten().tolist())
assert torch.allclose(recovered, patient.objects[record.id], atol=1e-5)
""")

md("""
With a *batch* the same division gives a gradient-weighted **blend** of the examples, not any
one of them: the more examples mixed into one update, the less it says about each. That is
one reason to **average** many updates before anyone sees them, which is what the trusted
aggregator of notebook 05 does, and what secure aggregation and differential privacy in
notebook 08 make rigorous.
""")

code("""
blend_ptr = patient.send(TinyLinear(2, 1))
batch_x, batch_y = (patient.hold(t, private=True) for t in make_points(60))
F.mse_loss(blend_ptr(batch_x), batch_y).backward()
gw, gb = blend_ptr.linear.weight.grad, blend_ptr.linear.bias.grad
patient.release(gw), patient.release(gb)
blend = gw.get() / gb.get()  # (1, 2)
nearest = (patient.objects[batch_x.id] - blend).norm(dim=1).min().item()
print(f"blend {blend.flatten().tolist()}: the nearest real point is {nearest:.2f} away")
assert nearest > 0.01
""")

md("""
## Recap

- `bob.send(model, opt)` ships a model with its optimizer; `model_ptr(x_ptr)`,
  `loss_ptr.backward()` and `opt_ptr.step()` run on bob. The remote loop *is* the ordinary loop
  with pointers, and gives bit-identical weights.
- Training on data split between owners: move the **model** to each owner in turn.
- The **log** proves the data never moved; the model's size sets the cost of every trip.
- **Private** data taints everything computed from it, trained models included; the owner
  **releases** what may leave.
- A released gradient or model update of **one** example reveals that example exactly;
  averaging many updates is the first defence.

## Exercises
""")

md("""
**Exercise 04.1 (remote training).** Train a fresh `TinyLinear(2, 1)` on **alice's** data only
(`alice_x`, `alice_y`), entirely through pointers, and store the trained model, brought back, in
`model`. It should reach the best line through alice's points.
""")

code("""
### BEGIN SOLUTION
model = TinyLinear(2, 1)
model_ptr, opt_ptr = alice.send(model, torch.optim.SGD(model.parameters(), lr=0.1))
for _ in range(200):
    opt_ptr.zero_grad()
    loss_ptr = F.mse_loss(model_ptr(alice_x), alice_y)
    loss_ptr.backward()
    opt_ptr.step()
model = model_ptr.get()
### END SOLUTION
check("04.1", model, alice)
""")

md("""
**Exercise 04.2 (what a round costs).** In one round a client receives the model and sends it
back. How many bytes of tensor payload is that for the MNIST `CNN` (float32)? Store the int in
`round_bytes`.
""")

code("""
### BEGIN SOLUTION
round_bytes = 2 * 4 * count_parameters(CNN())
### END SOLUTION
check("04.2", round_bytes)
""")

md("""
**Exercise 04.3 (a model update leaks too).** Carol holds one private record. We send her a
model, she takes **one** SGD step on her record and releases the updated model. Recover her
record `x` (3 numbers) from `sent` and `released` alone, into `recovered`.
""")

code("""
carol = VirtualWorker("carol")
carol_x = carol.hold(torch.tensor([[1.5, -0.4, 0.9]]), private=True)  # you may not look at this
carol_y = carol.hold(torch.tensor([[2.0]]), private=True)
sent = TinyLinear(3, 1)
model_ptr, opt_ptr = carol.send(sent, torch.optim.SGD(sent.parameters(), lr=0.1))
F.mse_loss(model_ptr(carol_x), carol_y).backward()
opt_ptr.step()
carol.release(model_ptr)
released = model_ptr.get()
""")

code("""
### BEGIN SOLUTION
delta_w = released.linear.weight - sent.linear.weight  # (1, 3): -lr * g * x
delta_b = released.linear.bias - sent.linear.bias  # (1,): -lr * g
recovered = (delta_w / delta_b).flatten().detach()  # (3,)
### END SOLUTION
check("04.3", recovered, carol)
""")

md("""
Next: **05 · The trusted aggregator**: several hospitals each train their own copy, and only
the **average** of their models is ever seen.
""")


def build() -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in CELLS]
    for i, cell in enumerate(nb.cells):
        cell.id = f"nb04-{i:02d}"  # stable ids: regenerating gives a clean diff
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "notebooks/04-remote-training.ipynb")
    nbformat.write(build(), out)
    subprocess.run([sys.executable, "-m", "ruff", "format", "--quiet", str(out)], check=True)
    print(f"wrote {out} ({len(CELLS)} cells)")
