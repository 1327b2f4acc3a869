"""Write notebooks/08-privacy.ipynb (without outputs) from the cells below.

Usage: python scripts/make_nb_08.py    (then execute it, e.g. with nbval, to check it)
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
# 08 · Privacy: what updates leak, and how to leak less

Federated learning keeps the data on the clients, but the clients still send something: gradients
or model updates, computed *from* their data. This notebook asks how much those updates give away,
and builds, from scratch, the two standard answers.

**By the end you will be able to**
1. reconstruct a training image from the gradient a client sent (*Deep Leakage from Gradients*),
2. build **additive secret sharing** over a ring, with fixed-point numbers, and check that one share
   tells nothing about the secret,
3. run **secure aggregation** with pairwise masks, so the server learns the sum of the updates and
   nothing else, and say what this protocol does *not* protect against,
4. train with **DP-FedAvg** (clipping + Gaussian noise), read the accuracy-against-noise trade-off,
   and compute the privacy guarantee $\varepsilon$ with a stated accountant.

Everything lives in `fedtutor/privacy.py`, a few hundred lines of plain PyTorch: read it alongside.
""")

code("""
import matplotlib.pyplot as plt
import torch

import fedtutor
from fedtutor import data, plots
from fedtutor.exercises import check, hint, solution  # noqa: F401
from fedtutor.federated import FedAvg, make_clients, run_federated
from fedtutor.models import MLP2NN
from fedtutor.privacy import (
    DPAggregator,
    SecureAggregationServer,
    SecureAggregator,
    add_shares,
    clip_update,
    decode,
    dp_epsilon,
    encode,
    example_gradients,
    image_mse,
    infer_label,
    invert_gradients,
    ks_uniform,
    mask_update,
    pairwise_seeds,
    reconstruct,
    ring_to_unit,
    share,
    ssim,
)

QUICK = fedtutor.quick_mode()
SEED = 0
fedtutor.seed_everything(SEED)
x_train, y_train = data.load_tensors()
x_test, y_test = data.load_tensors(train=False)
test = (x_test[:2000], y_test[:2000]) if QUICK else (x_test, y_test)  # quick mode: a smaller test set
print("quick mode" if QUICK else "full mode", "| test images:", len(test[1]))
""")

md(r"""
## 1. What an update leaks

Take the simplest federated step, FedSGD with a batch of one: a client computes the gradient of
the loss on **one** of its images and sends it. The gradient of the 2NN is 199,210 numbers, none
of which is a pixel. Does it hide the image?
""")

code("""
victim, victim_label = x_train[1234:1235], y_train[1234:1235]  # (1, 1, 28, 28), (1,): the client's secret
model = MLP2NN()  # the global model the server sent, freshly initialised (round 1)
grads = example_gradients(model, victim, victim_label)  # what the client uploads
for (name, _), g in zip(model.named_parameters(), grads, strict=True):
    print(f"{name:14s} gradient {tuple(g.shape)}")
print(f"{sum(g.numel() for g in grads):,} numbers uploaded")
""")

md(r"""
**Step 1: the label.** With softmax cross-entropy, the gradient of the last layer's weights is
$\partial L / \partial W_{c} = (p_c - [c = y])\, h$, where $h \ge 0$ are the ReLU activations
feeding that layer. Every row is non-negative except the true class's, whose factor $p_y - 1$ is
negative (Zhao et al. 2020, *iDLG*). So the label can be read off directly:
""")

code("""
guessed = infer_label(grads)
print("label read from the gradient:", guessed, "| true label:", victim_label.item())
assert guessed == victim_label.item()
""")

md(r"""
**Step 2: the image** (Zhu et al. 2019, *Deep Leakage from Gradients*). Start from a noise image
$x'$ and change it until *its* gradient matches the uploaded one:

$$\min_{x'} \; \sum_{\text{parameters}} \big\lVert \nabla_\theta L(x', y) - \nabla_\theta L(x, y) \big\rVert^2 .$$

The objective depends on $x'$ *through a gradient*, so each step differentiates a gradient
(`create_graph=True`); L-BFGS, a quasi-Newton optimizer, converges in a few dozen iterations.
""")

code("""
inversion = invert_gradients(model, grads, iterations=30, seed=SEED)
frames = torch.cat([victim] + [image for _, image in inversion.snapshots])  # (1 + snapshots, 1, 28, 28)
titles = ["original"] + [f"iter {it}" for it, _ in inversion.snapshots]
plots.image_grid(frames, titles, columns=len(frames), title="Reconstructing a training image from its gradient")
plt.show()
""")

code("""
mse, similarity = image_mse(inversion.image, victim), ssim(inversion.image, victim)
print(f"pixel MSE {mse:.2e} (pixels in [0, 1]), SSIM {similarity:.3f} (1 = identical)")
assert mse < 1e-3 and similarity > 0.9, "the reconstruction should match the private image"
fig = plots.line(range(1, len(inversion.losses) + 1), inversion.losses, "L-BFGS iteration", "gradient distance")
fig.axes[0].set_yscale("log")
plt.show()
""")

md(r"""
The server, or anyone who sees the upload, gets the image back essentially **pixel for pixel**.
Why it is this easy here: one example, a fully connected first layer with a bias, a fresh model.
(Exercise 08.1 shows the first layer even gives the image away *without* any optimization.)
Batches, several local steps (FedAvg's $E > 1$) and bigger models make the attack harder, but not
impossible: Geiping et al. (2020) reconstruct ImageNet photos from averaged updates.

So the server should not see any single client's update, and what it does see should not depend
too much on any one person. Those are the two tools of the rest of this notebook: **secure
aggregation** and **differential privacy**.
""")

md(r"""
## 2. Additive secret sharing, from scratch

To share a secret number $s$ between bob and alice: give bob a uniformly random number $r$, and
alice $s - r$. Each alone holds a random-looking number; together, $r + (s - r) = s$.

"Uniformly random" needs a finite set of numbers, so we compute in a **ring**: the integers
modulo $2^{64}$, which is exactly what a 64-bit integer does when it overflows: it wraps around,
like a clock. PyTorch's `int64` arithmetic wraps, so the ring costs nothing:
""")

code("""
top = torch.tensor([2**63 - 1])  # the largest int64
print(top, "+ 1 =", top + 1)  # wraps around to the smallest: arithmetic modulo 2^64
assert (top + 1).item() == -(2**63)
""")

md(r"""
**Fixed-point encoding** turns floats into ring elements: multiply by $2^{16}$ and round. The
precision is $2^{-16} \approx 1.5 \cdot 10^{-5}$ and the range is $\pm 2^{47} \approx 1.4 \cdot 10^{14}$;
a value outside the range would wrap and decode to nonsense, so `encode` refuses it instead.
""")

code("""
x = torch.tensor([3.14159, -2.5, 0.1])
encoded = encode(x)
print("encoded:", encoded.tolist())
print("decoded:", decode(encoded).tolist())
assert (decode(encoded) - x.double()).abs().max() <= 2**-17  # rounding: at most half a step
try:
    encode(torch.tensor([1e15]))
    raise AssertionError("1e15 is beyond the fixed-point range and should be refused")
except OverflowError as error:
    print("OverflowError:", error)
""")

md("""
Now share a salary between bob and alice. Each share, on its own, decodes to a meaningless number:
""")

code("""
g = torch.Generator().manual_seed(SEED)
salary = encode(torch.tensor([52_000.0]))
bob_share, alice_share = share(salary, parties=2, generator=g)
print("bob holds  ", bob_share.item(), "which decodes to", decode(bob_share).item())
print("alice holds", alice_share.item(), "which decodes to", decode(alice_share).item())
print("together:", decode(reconstruct([bob_share, alice_share])).item())
assert decode(reconstruct([bob_share, alice_share])).item() == 52_000.0
""")

md(r"""
Shares **add**: if bob and alice hold shares of $a$ and of $b$, each adds its two shares locally
and they now hold shares of $a + b$, without anyone seeing $a$ or $b$. This is all secure
aggregation needs.
""")

code("""
a, b = encode(torch.tensor([52_000.0])), encode(torch.tensor([61_500.0]))
a_shares, b_shares = share(a, 2, generator=g), share(b, 2, generator=g)
total_shares = add_shares(a_shares, b_shares)  # bob adds his two shares, alice hers
print("sum of the salaries:", decode(reconstruct(total_shares)).item())
assert decode(reconstruct(total_shares)).item() == 52_000.0 + 61_500.0
""")

md(r"""
**Does a share really say nothing?** Alice's share is $s - r$ with $r$ uniform on the ring; for
*any* $s$, that is again uniform. Let us check it empirically: share two very different secrets
20,000 times each and compare the distributions of alice's share. A Kolmogorov-Smirnov test measures
the largest gap $D$ between a sample's cumulative distribution and the uniform one.
""")

code("""
draws = 20_000
alice_shares = {}
for secret in (0.0, 1_000_000.0):
    _, alice_shares[f"secret = {secret:,.0f}"] = share(encode(torch.full((draws,), secret)), 2, generator=g)
plots.histograms(
    {label: ring_to_unit(s) for label, s in alice_shares.items()},
    xlabel="alice's share, as a fraction of the ring (0 to 2^64)",
    title="One share looks the same whatever the secret",
)
plt.show()
for label, s in alice_shares.items():
    statistic, critical = ks_uniform(ring_to_unit(s))
    print(f"{label:>20s}: KS distance D = {statistic:.4f} (uniform if below {critical:.4f})")
    assert statistic < critical
""")

md(r"""
## 3. Secure aggregation: the server learns the sum, only the sum

Secret sharing across two servers that never collude would already work. Bonawitz et al. (2017)
need only **one** server, with **pairwise masks**: every pair of clients $i < j$ agrees on a
random seed $s_{ij}$ (by a Diffie-Hellman key exchange the server cannot read), and client $i$ uploads

$$y_i = \text{enc}(x_i) + \sum_{j > i} \text{PRG}(s_{ij}) - \sum_{j < i} \text{PRG}(s_{ji}) \pmod{2^{64}} .$$

Each mask is added by one client of the pair and subtracted by the other, so they all cancel in
$\sum_i y_i = \sum_i \text{enc}(x_i)$, while each $y_i$ alone is uniformly random. Three clients,
four numbers each:
""")

code("""
updates = [
    torch.tensor([0.5, -1.0, 2.0, 0.25]),  # client 0
    torch.tensor([1.5, 0.0, -0.5, 0.75]),  # client 1
    torch.tensor([-1.0, 2.5, 0.5, 0.0]),  # client 2
]
seeds = pairwise_seeds(3, seed=SEED)  # in the real protocol: key agreement between each pair
server = SecureAggregationServer(clients=3, max_abs=10.0)  # max_abs: public bound on every value
for k, update in enumerate(updates):
    server.receive(k, mask_update(update, k, seeds, max_abs=10.0))
for k, upload in server.received.items():  # everything the server ever holds
    print(f"server holds from client {k}: {upload.tolist()}")
    print(f"                 decoded: {[f'{v:.3g}' for v in decode(upload).tolist()]}")
print("sum recovered by the server:", server.total().tolist())
print("plain sum                  :", sum(updates).tolist())
assert torch.allclose(server.total(), sum(updates).double(), atol=3 * 2**-17)
""")

md("""
The masks only cancel if **every** client uploads. If one drops out after the seeds were agreed,
its masks stay in the sum and the result is noise; this simplified protocol refuses to answer:
""")

code("""
server = SecureAggregationServer(clients=3, max_abs=10.0)
for k in (0, 2):  # client 1 lost its connection
    server.receive(k, mask_update(updates[k], k, seeds, max_abs=10.0))
try:
    server.total()
    raise AssertionError("a missing client must be reported")
except RuntimeError as error:
    print("RuntimeError:", error)
""")

md(r"""
**Secure aggregation inside FedAvg.** The engine of notebook 06 calls one aggregation hook per
round with the clients' updates; `SecureAggregator` computes the weighted mean there, through
masks (fresh ones each round), and a `SecureAggregationServer` that receives only masked vectors.
Same clients, same seed, with and without it:
""")

code("""
# NBVAL_IGNORE_OUTPUT
clients = make_clients(x_train, y_train, data.iid(y_train, 10, seed=SEED))
rounds = 3 if QUICK else 10
config = dict(fraction=0.5, epochs=1, batch_size=10, lr=0.05)
run = dict(rounds=rounds, seed=SEED, live=False)
fedtutor.seed_everything(SEED)
plain = run_federated(MLP2NN(), clients, test, FedAvg(**config), label="plain FedAvg", **run)
fedtutor.seed_everything(SEED)
secure_agg = SecureAggregator(max_abs=10.0, seed=SEED)
secure_config = FedAvg(**config, aggregator=secure_agg)
secure = run_federated(MLP2NN(), clients, test, secure_config, label="secure aggregation", **run)
""")

code("""
seen = secure_agg.last_server.received
print(f"last round, the server received {len(seen)} masked vectors of {seen[min(seen)].numel():,} ring elements")
print("client", min(seen), "upload starts with", seen[min(seen)][:3].tolist())
print(f"final accuracy: plain {plain['test_acc'][-1]:.2%}, secure {secure['test_acc'][-1]:.2%}")
assert all(v.dtype == torch.int64 for v in seen.values())  # only ring elements, never float updates
assert abs(plain["test_acc"][-1] - secure["test_acc"][-1]) < 0.01  # same accuracy, up to fixed-point rounding
plots.accuracy_curves([plain, secure], title="Secure aggregation changes what the server sees, not the model")
plt.show()
""")

md(r"""
**What this protocol does not handle.** Be precise about a security claim:

- **Dropouts during masking.** A client that leaves after agreeing on seeds ruins the round (above).
  Bonawitz et al. secret-share every seed among the clients so that survivors can remove a dropped
  client's masks, and add a second, self mask so that a late upload cannot then be unmasked.
- **A malicious server.** We assume the server follows the protocol and is only curious. A server
  that lies (e.g. claims a client dropped to get its masks removed) or that simulates fake clients
  needs the full protocol's consistency checks and a bound on how many clients it controls.
- **Key agreement** is simulated: `pairwise_seeds` deals all seeds from one generator, so in this
  simulation whoever runs it knows them. Real clients run Diffie-Hellman and never reveal them.
- **Malicious clients** can send anything, and since updates are hidden, the server can no longer
  inspect them to reject poisoned ones.
- **The sum itself leaks.** With two clients, each learns the other's update from the sum minus
  its own; with few clients the averaged update can still be inverted. Secure aggregation hides
  *who* sent what, not *what the data implies*. That is the job of differential privacy.
- **Randomness**: shares and masks come from torch's generator, a Mersenne Twister, which is
  predictable from enough of its output. Fine for learning; real systems use a cryptographic PRG.
- Cost: every client expands $K - 1$ masks each round, $O(K^2 P)$ work in total.
""")

md(r"""
## 4. Differential privacy: DP-FedAvg

Differential privacy asks that the result barely changes whether or not any one client took part.
DP-FedAvg (McMahan et al. 2018) gets there in two steps, at the server, once per round:

1. **Clip** each client's update $\Delta_k$ to L2 norm at most $S$:
   $\Delta_k \cdot \min(1, S / \lVert \Delta_k \rVert)$. Now one client can move the *sum* of the
   updates by at most $S$, whatever its data (its *sensitivity*).
2. **Add Gaussian noise** of standard deviation $\sigma S$ to the sum, that is $\sigma S / m$ to
   the mean over the $m$ clients of the round. $\sigma$ is the **noise multiplier**.

Clients count equally here (no weighting by dataset size): a large client's weight would exceed
the bound $S / m$ the noise is calibrated to.
""")

code("""
u = torch.tensor([3.0, 4.0])  # norm 5
clipped = clip_update(u, clip_norm=1.0)
print("clipped:", clipped.tolist(), "norm", clipped.norm().item())
assert torch.allclose(clipped, torch.tensor([0.6, 0.8]))  # same direction, norm S = 1
assert torch.equal(clip_update(torch.tensor([0.3, 0.4]), clip_norm=1.0), torch.tensor([0.3, 0.4]))  # small: untouched
""")

md(r"""
**Noise against the attack of part 1.** Add Gaussian noise of a given standard deviation to each of
the 199,210 numbers of part 1's single-example gradient (no clipping, just the noise) and run the
same reconstruction on it.
""")

code("""
flat = torch.cat([g.flatten() for g in grads])  # (199210,): the upload as one vector
print(f"gradient norm {flat.norm():.2f}")


def noisy(noise_std: float) -> list[torch.Tensor]:
    noise = torch.randn(flat.shape, generator=torch.Generator().manual_seed(SEED))
    pieces = (flat + noise_std * noise).split([g.numel() for g in grads])
    return [piece.reshape(g.shape) for piece, g in zip(pieces, grads, strict=True)]


noise_levels = [0.0, 0.1, 0.3, 1.0]  # std of the noise on each of the 199,210 numbers
attacks = [invert_gradients(model, noisy(std), iterations=30, seed=SEED) for std in noise_levels]
errors = [image_mse(a.image, victim) for a in attacks]
titles = ["original"] + [f"noise {std:g}\\nMSE {e:.3f}" for std, e in zip(noise_levels, errors, strict=True)]
frames = torch.cat([victim] + [a.image for a in attacks])  # (5, 1, 28, 28)
plots.image_grid(frames, titles, columns=5, title="The attack on noisy gradients")
plt.show()
assert errors[0] < 1e-3 and errors == sorted(errors) and errors[-1] > 0.1  # more noise, worse reconstruction
""")

md(r"""
**The price: accuracy.** 100 clients of 50 images each, half of them per round, the update clipped
at $S$ and noised with several $\sigma$. For each run we also compute $\varepsilon$, the privacy
guarantee, with a stated accountant: **Rényi DP of the Gaussian mechanism** (Mironov 2017),
composed over the rounds and converted to $(\varepsilon, \delta)$ with $\delta = 10^{-5}$. The
guarantee is **per client**: it bounds what the runs reveal about whether any one client's update
was in them at all (versus replaced by zero). It ignores the extra privacy that sampling half of
the clients gives, so it is an upper bound.
""")

code("""
# NBVAL_IGNORE_OUTPUT
dp_clients = make_clients(x_train, y_train, data.iid(y_train, 100, seed=SEED))
dp_rounds = 4 if QUICK else 12
dp_test = (x_test[:2000], y_test[:2000])  # evaluated after every round of every run: keep it small
clip_norm = 0.5
noise_multipliers = [0.0, 1.0, 4.0] if QUICK else [0.0, 0.5, 1.0, 2.0, 4.0]
dp_histories, aggregators = [], []
for sigma in noise_multipliers:
    fedtutor.seed_everything(SEED)
    aggregators.append(DPAggregator(clip_norm, sigma, seed=SEED))
    strategy = FedAvg(fraction=0.5, epochs=1, batch_size=10, lr=0.1, aggregator=aggregators[-1])
    dp_histories.append(
        run_federated(MLP2NN(), dp_clients, dp_test, strategy, rounds=dp_rounds, seed=SEED, progress=False, live=False)
    )
""")

code("""
final_acc = [h["test_acc"][-1] for h in dp_histories]
epsilons = [dp_epsilon(sigma, dp_rounds, delta=1e-5) for sigma in noise_multipliers]
for sigma, acc, eps in zip(noise_multipliers, final_acc, epsilons, strict=True):
    print(f"sigma = {sigma:3.1f}: test accuracy {acc:.2%}, epsilon = {eps:.3g} (delta = 1e-5)")
plots.privacy_tradeoff(noise_multipliers, final_acc, epsilons)
plt.show()
assert final_acc[0] > 0.6  # the clipped, noiseless baseline learns
assert final_acc[-1] < final_acc[0] - 0.05  # heavy noise costs accuracy
assert epsilons == sorted(epsilons, reverse=True)  # more noise, smaller epsilon: stronger privacy
""")

md(r"""
How to read this honestly:

- **The noise is large because the model is large and the round is small.** The noise on the mean
  has std $\sigma S / m$ in *each* of the $P$ = 199,210 coordinates, so its norm is about
  $\sigma S \sqrt{P} / m \approx 450\,\sigma S / m$: with $m = 50$ clients, $9\sigma S$, against a
  mean update of norm at most $S$. Production systems (e.g. keyboard prediction) average thousands
  of clients per round, which is what makes DP affordable.
- **The epsilons are weak.** An $\varepsilon$ of 10 or more promises little, and the runs with
  single-digit $\varepsilon$ are the ones that lose accuracy. Longer training costs privacy:
  $\varepsilon$ grows with the number of rounds. The accountant is a simple upper bound, not the
  tightest one known.
- **Clipping has a cost of its own**: updates larger than $S$ are shrunk, which slows training
  even with no noise. The histogram below shows how much it cut in the noiseless run.
""")

code("""
norms = torch.tensor(aggregators[0].norms)
clip_line = (clip_norm, f"clip norm S = {clip_norm}")
plots.histograms({"client update norms": norms}, xlabel="L2 norm of a client's update", marker=clip_line)
plt.show()
print(f"{(norms > clip_norm).float().mean():.0%} of the updates were clipped")
""")

md(r"""
## Recap

- A gradient or update is a function of the data, and for small batches it can be **inverted**:
  the 2NN's single-example gradient gave back the image almost exactly, label included.
- **Additive secret sharing** over $\mathbb{Z}_{2^{64}}$: shares are uniform whatever the secret,
  they add like the secrets, and fixed-point encoding carries floats (with a range that is checked).
- **Secure aggregation** with pairwise masks: the server holds only random-looking vectors and
  still gets the exact sum, so FedAvg trains the same model. It does not survive dropouts during
  masking, assumes an honest-but-curious server, and the sum itself still carries information.
- **DP-FedAvg**: clip to $S$, add noise $\sigma S$ to the sum. Privacy, measured by $\varepsilon$
  from a stated accountant, is paid for in accuracy; many clients per round make it cheaper.

## Exercises
""")

md(r"""
**Exercise 08.1.** The first layer computes $h = W_1 x + b_1$, so
$\partial L / \partial W_1[i, :] = \partial L / \partial b_1[i] \cdot x$ for every unit $i$.
Recover the victim's image from `grads` (`grads[0]` is $\partial L / \partial W_1$, `grads[1]` is
$\partial L / \partial b_1$) with a division, no optimization: a tensor `recovered` of 784 pixels.
""")

code("""
### BEGIN SOLUTION
i = grads[1].abs().argmax()  # a unit whose bias gradient is far from 0
recovered = (grads[0][i] / grads[1][i]).reshape(1, 1, 28, 28)
### END SOLUTION
check("08.1", recovered, victim)
""")

md(r"""
**Exercise 08.2.** A lazy implementation reuses the same pairwise seeds in every round. Client 0
uploaded `round1` and `round2` below, masked with the same seeds. Show what the server learns: compute
`leak`, the difference between client 0's two updates, from the two uploads alone.
""")

code("""
lazy_seeds = pairwise_seeds(3, seed=1)
update_round1, update_round2 = torch.randn(5, generator=g), torch.randn(5, generator=g)
round1 = mask_update(update_round1, 0, lazy_seeds, max_abs=10.0)
round2 = mask_update(update_round2, 0, lazy_seeds, max_abs=10.0)
### BEGIN SOLUTION
leak = decode(round2 - round1)
### END SOLUTION
check("08.2", leak, update_round2 - update_round1)
""")

md(r"""
**Exercise 08.3.** You may spend a privacy budget of $\varepsilon = 8$ (with $\delta = 10^{-5}$)
on 100 rounds of DP-FedAvg in which every client takes part. Find the smallest noise multiplier
`sigma`, to two decimals, that stays within the budget, using `dp_epsilon`.
""")

code("""
### BEGIN SOLUTION
sigma = next(s / 100 for s in range(1, 10_000) if dp_epsilon(s / 100, rounds=100, delta=1e-5) <= 8)
### END SOLUTION
check("08.3", sigma)
""")

md("""
Next: **09 · Flower**: the same model and client code on a real federated framework, as separate
processes talking over the network.
""")


def build() -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = [new_markdown_cell(src) if kind == "markdown" else new_code_cell(src) for kind, src in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


if __name__ == "__main__":
    path = Path(__file__).resolve().parent.parent / "notebooks" / "08-privacy.ipynb"
    nbformat.write(build(), path)
    print(f"wrote {path}")
