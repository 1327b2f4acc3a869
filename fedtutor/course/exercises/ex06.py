"""Exercises of notebook 06: federated MNIST. The learner writes a FedAvg round in plain PyTorch,
checked against the engine's round on clients and settings the learner never saw."""

from __future__ import annotations

import copy
from contextlib import ExitStack
from typing import Any
from unittest import mock

import torch

from fedtutor.course.exercises._common import (
    Wrong,
    call_learner,
    exercise,
    expect,
    expect_function,
    learner_generator,
)


@exercise(
    "06.1",
    hint="Upload per round = m x P x 4 bytes: m = max(1, round(C * K)) clients each send P float32 parameters "
    "(count_parameters(model)); divide by 1e6 for MB.",
)
def _check_upload_mb(upload_mb: Any) -> str:
    from fedtutor.models import CNN, MLP2NN, count_parameters

    expect_function(upload_mb, "upload_mb")
    g = learner_generator("06.1")
    k = int(torch.randint(30, 300, (1,), generator=g))
    cases = [(CNN(), "the CNN", 100, 0.1), (MLP2NN(), "the 2NN", k, 0.2), (CNN(), "the CNN", 4, 0.1)]
    for model, name, clients, fraction in cases:
        answer = call_learner(upload_mb, model, clients, fraction, what=f"({name}, K={clients}, C={fraction})")
        expect(isinstance(answer, (int, float)), f"upload_mb returned {answer!r}; return a number of MB.")
        m = max(1, round(fraction * clients))
        expected = m * count_parameters(model) * 4 / 1e6
        case = f"upload_mb({name}, K={clients}, C={fraction}) = {answer:.4g}"
        ratio = answer / expected
        expect(abs(ratio - 2) > 1e-6, f"{case} is twice the upload: count only the upload, not the download too.")
        expect(abs(ratio - 0.25) > 1e-6, f"{case}: a float32 weighs 4 bytes; multiply by 4.")
        expect(abs(ratio - 1 / m) > 1e-6 or m == 1, f"{case} is one client's upload; {m} clients take part.")
        expect(
            abs(answer - expected) < 1e-6 * max(1.0, expected),
            f"{case}, expected {expected:.4g}: m = max(1, round(C * K)) = {m} clients x parameters x 4 bytes / 1e6."
            + (" With C * K below one, one client is still asked." if fraction * clients < 1 else ""),
        )
    return "upload_mb is right for the CNN and the 2NN, for K=100 and for a round with C*K below one."


# ----------------------------------------------------------------------------- 06.2: a FedAvg round by hand


def _round_setup(g: torch.Generator):
    """Clients of unequal sizes with random data, a model, and the round's settings, all per learner."""
    from fedtutor.federated import make_clients
    from fedtutor.models import MLP2NN

    sizes = torch.randint(6, 41, (4,), generator=g)  # (4,) unequal: a plain mean is not FedAvg
    x = torch.randn(int(sizes.sum()), 1, 28, 28, generator=g)  # (N, 1, 28, 28)
    y = torch.randint(0, 10, (len(x),), generator=g)  # (N,)
    parts = list(torch.arange(len(x)).split(sizes.tolist()))
    model = MLP2NN()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    settings = {
        "t": int(torch.randint(1, 9, (1,), generator=g)),
        "seed": int(torch.randint(0, 1000, (1,), generator=g)),
        "epochs": int(torch.randint(1, 3, (1,), generator=g)),
        "batch_size": int(torch.randint(4, 11, (1,), generator=g)),
        "lr": 0.05,
    }
    return make_clients(x, y, parts), model, settings


def _engine_forbidden(name: str):
    def refuse(*args, **kwargs):
        raise Wrong(
            f"Your round called the engine's {name}: write the round with plain PyTorch (the engine is the reference)."
        )

    return refuse


def _as_state(result: Any, what: str) -> dict[str, torch.Tensor]:
    if isinstance(result, torch.nn.Module):
        result = result.state_dict()
    expect(isinstance(result, dict), f"{what} should return the new global state_dict, got {type(result).__name__}.")
    return result


def _largest_gap(a: dict, b: dict) -> tuple[float, str]:
    gaps = {k: (a[k].float() - b[k].float()).abs().max().item() for k in b}
    key = max(gaps, key=gaps.get)
    return gaps[key], key


@exercise(
    "06.2",
    hint="For each client: copy.deepcopy(global_model), an SGD optimizer, a generator seeded with "
    "fl.derive_seed(seed, t, client.id), and per epoch torch.randperm(len(client), generator=g).split(batch_size). "
    "Then average the state_dicts, weighting client k by len(client).",
)
def _check_fedavg_round(fedavg_round: Any) -> str:
    from fedtutor import federated as fl

    expect_function(fedavg_round, "fedavg_round")
    clients, model, s = _round_setup(learner_generator("06.2"))
    start = copy.deepcopy(model.state_dict())
    mine = copy.deepcopy(model)
    forbidden = ["train_client", "weighted_average", "run_federated"]
    with ExitStack() as stack:
        for name in forbidden:
            stack.enter_context(mock.patch.object(fl, name, _engine_forbidden(f"fl.{name}")))
        stack.enter_context(mock.patch.object(fl.Server, "round", _engine_forbidden("Server.round")))
        stack.enter_context(mock.patch.object(fl.Server, "train_clients", _engine_forbidden("Server.train_clients")))
        args = (mine, clients, s["t"], s["seed"], s["epochs"], s["batch_size"], s["lr"])
        answer = _as_state(call_learner(fedavg_round, *args, what="(on the checker's clients)"), "fedavg_round")
    expect(
        set(answer) == set(start), f"The state_dict you returned has keys {sorted(answer)[:3]}...; return the model's."
    )

    strategy = fl.FedAvg(fraction=1.0, epochs=s["epochs"], batch_size=s["batch_size"], lr=s["lr"])
    engine = fl.Server(copy.deepcopy(model), clients, strategy, seed=s["seed"], workers=1)
    engine.round(s["t"])
    reference = engine.model.state_dict()
    gap, key = _largest_gap(answer, reference)
    if gap < 1e-5:
        sizes = [len(c) for c in clients]
        return (
            f"Your round equals the engine's on {len(clients)} clients of sizes {sizes} (largest difference {gap:.1e})."
        )

    expect(
        _largest_gap(mine.state_dict(), start)[0] == 0,
        "global_model changed during your round: each client "
        "must train its own copy (copy.deepcopy(global_model)), and the server's model stays as it was.",
    )
    expect(_largest_gap(answer, start)[0] > 0, "You returned the global weights unchanged: train each client first.")
    local = []  # each client's trained state, the way the engine trains it
    for c in clients:
        generator = torch.Generator().manual_seed(fl.derive_seed(s["seed"], s["t"], c.id))
        delta = fl.train_client(model, c, strategy, generator).delta
        trained = copy.deepcopy(model)
        fl.set_flat_params(trained, fl.flat_params(model) + delta)
        local.append(trained.state_dict())
    plain = {k: sum(state[k] for state in local) / len(local) for k in reference}
    expect(
        _largest_gap(answer, plain)[0] > 1e-5,
        "That is the plain mean of the clients' weights: FedAvg weights "
        "client k by its number of examples, len(client), and divides by their total.",
    )
    for c, state in zip(clients, local, strict=True):
        expect(
            _largest_gap(answer, state)[0] > 1e-5, f"You returned client {c.id}'s weights alone: average all clients."
        )
    raise Wrong(
        f"Your round's weights differ from the engine's by up to {gap:.2g} (in {key}). Check that each client "
        "shuffles with torch.randperm(len(client), generator=g), g seeded by fl.derive_seed(seed, t, client.id), "
        "once per epoch; plain SGD at lr, no momentum; and weights len(client) / total."
    )


@exercise(
    "06.3",
    hint="Copy section 4's FedAvg run and change only epochs=5 to epochs=1; then `fedavg_e1.rounds_to(TARGET)`.",
)
def _check_fedavg_e1(history: Any, rounds: Any, reference: Any, target: float) -> str:
    from fedtutor.federated import RoundHistory

    expect(isinstance(history, RoundHistory), f"Pass the history run_federated returned, got {type(history).__name__}.")
    expect(isinstance(reference, RoundHistory), "Pass section 4's FedAvg history (fedavg) as the third argument.")
    mine, theirs = history.config, reference.config
    expect(mine.get("epochs") == 1, f"This run used E={mine.get('epochs')}; the exercise asks for E=1.")
    changed = sorted(k for k in theirs if k != "epochs" and mine.get(k) != theirs[k])
    expect(
        not changed,
        "Only E should change, but "
        + ", ".join(f"{k}={mine.get(k)!r} (section 4: {theirs[k]!r})" for k in changed)
        + ": otherwise the comparison with E=5 is not fair.",
    )
    expect(len(history) == mine.get("rounds"), f"The run stopped after {len(history)} of {mine.get('rounds')} rounds.")
    actual = history.rounds_to(target)
    expect(rounds == actual, f"You answered {rounds}, but your run first reaches {target:.0%} at round {actual}.")
    e5 = reference.rounds_to(target)
    if actual is None:
        return f"E=1 did not reach {target:.0%} within {len(history)} rounds (E=5: round {e5}); read from your run."
    return f"E=1 first reached {target:.0%} at round {actual} (E=5: round {e5}); read from your run."
