"""Exercises of notebook 06: federated MNIST."""

from __future__ import annotations

from typing import Any

import torch

from fedtutor.course.exercises._common import exercise, expect, expect_tensor


@exercise(
    "06.1",
    hint="Upload per round = (clients per round) x (parameters) x (bytes per float32 = 4). "
    "With K=100, C=0.1 that is 10 clients; `count_parameters(CNN())` gives the parameters.",
    solution="""
    mb_upload_cnn = 10 * count_parameters(CNN()) * 4 / 1e6
    """,
)
def _check_cnn_upload(mb: Any) -> str:
    from fedtutor.models import CNN, count_parameters

    expected = 10 * count_parameters(CNN()) * 4 / 1e6
    expect(isinstance(mb, (int, float)), f"Answer with a number of MB, got {type(mb).__name__}.")
    ratio = mb / expected if expected else 0
    expect(abs(ratio - 2) > 1e-6, f"{mb:.2f} MB is twice the answer: count only the upload, not the download too.")
    expect(abs(ratio - 0.25) > 1e-6, f"{mb:.2f} MB: a float32 weighs 4 bytes; multiply by 4.")
    expect(abs(ratio - 0.1) > 1e-6, f"{mb:.2f} MB is one client's upload; 10 clients take part each round.")
    expect(abs(mb - expected) < 1e-3, f"{mb:.3f} MB is not it: clients per round x parameters x 4 bytes / 1e6.")
    per_client_s = expected / 10 * 8 / 10  # MB -> Mbit, over a 10 Mbit/s uplink
    return f"{expected:.1f} MB a round; each client's {expected / 10:.2f} MB takes ~{per_client_s:.0f} s at 10 Mbit/s."


@exercise(
    "06.2",
    hint="Multiply each update by its client's size, add them up, divide by the total size.",
    solution="""
    aggregate = sum(n * d for n, d in zip(sizes, deltas, strict=True)) / sum(sizes)
    """,
)
def _check_aggregate(aggregate: Any, deltas: list[torch.Tensor], sizes: list[int]) -> None:
    expect_tensor(aggregate, "aggregate", shape=tuple(deltas[0].shape))
    expected = sum(n * d for n, d in zip(sizes, deltas, strict=True)) / sum(sizes)
    plain = sum(deltas) / len(deltas)
    expect(
        not torch.allclose(aggregate, plain, atol=1e-6) or torch.allclose(plain, expected),
        "That is the plain mean: FedAvg weights each update by its client's number of examples.",
    )
    expect(
        torch.allclose(aggregate, expected, atol=1e-6),
        f"aggregate[0] is {aggregate[0].item():.4f}, expected {expected[0].item():.4f}. "
        "Divide by the total number of examples, sum(sizes).",
    )


@exercise(
    "06.3",
    hint="`fl.FedAvg(fraction=C, epochs=1, batch_size=10, lr=LR_FEDAVG)` with `fl.run_federated(...)`, "
    "then `history.rounds_to(TARGET)`.",
    solution="""
    fedtutor.seed_everything(SEED)
    fedavg_e1 = fl.run_federated(
        MLP2NN(), clients, test, fl.FedAvg(fraction=C, epochs=1, batch_size=10, lr=LR_FEDAVG), rounds=rounds_fedavg,
        seed=SEED, label="FedAvg (E=1, B=10)", live=False,
    )
    rounds_e1 = fedavg_e1.rounds_to(TARGET)
    """,
)
def _check_fedavg_e1(history: Any, rounds: Any, target: float) -> str:
    from fedtutor.federated import History

    expect(isinstance(history, History), f"Pass the History from run_federated, got {type(history).__name__}.")
    config = history.config
    expect(config.get("epochs") == 1, f"This run used E={config.get('epochs')}; the exercise asks for E=1.")
    expect(config.get("batch_size") == 10, f"This run used B={config.get('batch_size')}; use batch_size=10.")
    actual = history.rounds_to(target)
    expect(rounds == actual, f"You answered {rounds}, but the history first reaches {target:.0%} at round {actual}.")
    if actual is None:
        return f"E=1 did not reach {target:.0%} within {len(history)} rounds: less local work, more rounds."
    return f"E=1 reached {target:.0%} at round {actual}."
