"""Exercises of notebook 07: non-IID data. The learner writes FedProx's proximal term and a robust
aggregator; both are checked on models, updates and attacks the learner never saw, and against
the engine's own FedProx."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from fedtutor.course.exercises._common import (
    Wrong,
    call_learner,
    exercise,
    expect,
    expect_function,
    expect_tensor,
    learner_generator,
)


def _partition(g: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor]]:
    labels = torch.randint(0, 10, (300,), generator=g)  # (300,)
    order = labels.argsort()  # sorted by digit, as the shards partition does
    cuts = sorted(torch.randperm(299, generator=g)[:6].add(1).tolist())
    parts = list(order.tensor_split(cuts))  # 7 clients holding runs of sorted digits
    parts.append(order[:0])  # and one client with no data at all
    parts.append(order[:3])  # and one with a few examples of a single digit
    return labels, parts


@exercise(
    "07.1",
    hint="For client k, `labels[parts[k]]` are its labels; count the distinct ones (`.unique()`, or the "
    "entries above zero of label_counts).",
)
def _check_digits_per_client(digits_per_client: Any) -> str:
    expect_function(digits_per_client, "digits_per_client")
    labels, parts = _partition(learner_generator("07.1"))
    answer = call_learner(digits_per_client, labels.clone(), [p.clone() for p in parts], what="(labels, parts)")
    expected = torch.tensor([labels[p].unique().numel() for p in parts])  # (K,)
    expect_tensor(answer, "digits_per_client(labels, parts)", shape=tuple(expected.shape))
    sizes = torch.tensor([len(p) for p in parts])
    expect(
        not torch.equal(answer.long(), sizes),
        "Those are numbers of examples per client; count the *different* digits each holds.",
    )
    wrong = (answer.long() != expected).nonzero().flatten().tolist()  # clients with a wrong count
    if wrong:
        k = wrong[0]
        raise Wrong(
            f"On the checker's partition, client {k} holds {int(expected[k])} different digits "
            f"({len(parts[k])} examples), you counted {int(answer[k])}. A client with no data holds 0 digits."
        )
    return "digits_per_client is right on a partition you had not seen, including an empty client."


# ----------------------------------------------------------------------------- 07.2: FedProx


def _two_models(g: torch.Generator) -> tuple[nn.Module, nn.Module, float]:
    from fedtutor.models import MLP2NN

    global_model, local = MLP2NN(), MLP2NN()
    with torch.no_grad():
        for p, q in zip(global_model.parameters(), local.parameters(), strict=True):
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
            q.copy_(p + torch.randn(p.shape, generator=g) * 0.01)  # a client that drifted a little
    return local, global_model, float(torch.rand(1, generator=g) * 0.9 + 0.1)


@exercise(
    "07.2",
    hint="Sum ((w - w_global) ** 2).sum() over zip(model.parameters(), global_model.parameters()), "
    "with w_global detached, and multiply by mu / 2. Return the tensor (no .item()): the optimizer needs its gradient.",
)
def _check_proximal_term(proximal_term: Any) -> str:
    from fedtutor import federated as fl

    expect_function(proximal_term, "proximal_term")
    g = learner_generator("07.2")
    local, global_model, mu = _two_models(g)
    gap = [(p - q).detach() for p, q in zip(local.parameters(), global_model.parameters(), strict=True)]
    expected = 0.5 * mu * sum((d**2).sum() for d in gap)
    value = call_learner(proximal_term, local, global_model, mu, what="(model, global_model, mu)")
    expect(
        isinstance(value, torch.Tensor),
        f"proximal_term returned {type(value).__name__}; return the tensor itself (no .item()), so backward() "
        "can reach the model's weights.",
    )
    expect(value.numel() == 1, f"proximal_term should be one number, got shape {tuple(value.shape)}: sum it up.")
    v = value.item()
    expect(abs(v - 2 * expected.item()) > 1e-6 * abs(v), f"{v:.6g} is twice the term: FedProx uses mu / 2.")
    root = 0.5 * mu * sum((d**2).sum() for d in gap).sqrt().item()
    expect(
        abs(v - root) > 1e-6 * abs(v), f"{v:.6g} uses the norm; the term uses the *squared* norm ||w - w_global||^2."
    )
    expect(v > 0, f"proximal_term is {v:.6g}: a squared distance times mu / 2 is positive (mind the sign).")
    expect(
        abs(v - expected.item()) <= 1e-5 * expected.item(),
        f"On the checker's two models (mu={mu:.3f}) proximal_term is {v:.6g}, expected {expected.item():.6g} "
        "= mu / 2 * sum of (w - w_global)^2 over every parameter.",
    )
    local.zero_grad()
    global_model.zero_grad()
    expect(
        value.requires_grad,
        "proximal_term carries no gradient (detached, or built from .data): compute it from "
        "model.parameters() directly.",
    )
    value.backward()
    grads = [p.grad for p in local.parameters()]
    expect(
        all(gr is not None and torch.allclose(gr, mu * d, atol=1e-6) for gr, d in zip(grads, gap, strict=True)),
        "The gradient of your term with respect to the model's weights is not mu * (w - w_global).",
    )

    # In a client's loss: one client's local training with your term equals the engine's FedProx.
    x = torch.randn(24, 1, 28, 28, generator=g)  # (24, 1, 28, 28)
    client = fl.make_clients(x, torch.randint(0, 10, (24,), generator=g), [torch.arange(24)])[0]
    strategy = fl.FedProx(mu=mu, epochs=1, batch_size=8, lr=0.1)
    reference = fl.train_client(global_model, client, strategy, torch.Generator().manual_seed(3)).delta
    model = copy.deepcopy(global_model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for idx in torch.randperm(24, generator=torch.Generator().manual_seed(3)).split(8):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(client.x[idx]), client.y[idx]) + proximal_term(model, global_model, mu)
        loss.backward()
        optimizer.step()
    gap_engine = (fl.flat_params(model) - fl.flat_params(global_model) - reference).abs().max().item()
    expect(
        gap_engine < 1e-5, f"Training a client with your term differs from the engine's FedProx by {gap_engine:.2g}."
    )
    return (
        f"proximal_term has the right value and gradient (mu={mu:.2f}), and a client trained with it equals fl.FedProx."
    )


# ----------------------------------------------------------------------------- 07.3: a robust aggregator


def _poisoned_updates(g: torch.Generator) -> tuple[list[torch.Tensor], torch.Tensor, int]:
    k = int(torch.randint(5, 10, (1,), generator=g))
    deltas = [torch.randn(60, generator=g) * 0.1 for _ in range(k)]  # K x (P,), honest updates
    bad = int(torch.randint(0, k, (1,), generator=g))
    deltas[bad] = deltas[bad] * 100  # one client sends its update scaled by 100
    weights = torch.randint(10, 60, (k,), generator=g).double()  # (K,) examples per client
    weights[bad] = weights.max() * 2  # and claims to hold the most data
    return deltas, weights, bad


@exercise(
    "07.3",
    hint="torch.stack(deltas) is (K, P); its median over dim 0 (`.median(dim=0).values`) is coordinate-wise. "
    "A trimmed mean sorts over dim 0, drops the largest and smallest few and averages the rest.",
)
def _check_robust_aggregate(robust_aggregate: Any) -> str:
    expect_function(robust_aggregate, "robust_aggregate")
    deltas, weights, bad = _poisoned_updates(learner_generator("07.3"))
    originals = [d.clone() for d in deltas]
    answer = call_learner(robust_aggregate, deltas, weights.clone(), what="(deltas, weights)")
    if isinstance(answer, tuple) and hasattr(answer, "values"):
        raise Wrong("median(dim=0) returns (values, indices): return its .values.")
    p = deltas[0].numel()
    expect_tensor(answer, "robust_aggregate(deltas, weights)")
    expect(
        tuple(answer.shape) == (p,),
        f"robust_aggregate should return one update of shape ({p},) like each delta, got {tuple(answer.shape)}: "
        "reduce over the clients (dim 0 of torch.stack(deltas)), coordinate by coordinate.",
    )
    expect(
        all(torch.equal(d, o) for d, o in zip(deltas, originals, strict=True)),
        "robust_aggregate changed the deltas it was given (in place): work on a stacked copy.",
    )
    honest = torch.stack([d for i, d in enumerate(originals) if i != bad])  # (K-1, P)
    low, high = honest.min(0).values, honest.max(0).values
    outside = ((answer < low - 1e-6) | (answer > high + 1e-6)).sum().item()
    plain = torch.stack(originals).mean(0)
    expect(
        not torch.allclose(answer, plain, atol=1e-6),
        "That is the plain mean: one client scaled by 100 drags it anywhere. Take the median per coordinate instead.",
    )
    expect(
        outside == 0,
        f"With {len(deltas)} clients, one sending 100x its update, {outside} of {p} coordinates of your aggregate "
        "lie outside the range of the honest clients' values: the poisoned update still pulls it.",
    )
    same = call_learner(robust_aggregate, [originals[0].clone() for _ in range(3)], weights[:3].clone())
    expect(
        isinstance(same, torch.Tensor) and torch.allclose(same, originals[0]),
        "When every client sends the same update, the aggregate should be that update.",
    )
    return (
        f"Your aggregate stayed within the honest clients' range on all {p} coordinates with one of "
        f"{len(deltas)} clients poisoned (x100); the plain mean did not."
    )
