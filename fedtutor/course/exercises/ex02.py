"""Exercises of notebook 02: the MNIST classifier."""

from __future__ import annotations

from typing import Any

import torch

from fedtutor.course.exercises._common import Wrong, exercise, expect, expect_tensor


@exercise(
    "02.1",
    hint="Count parameters with `sum(p.numel() for p in model.parameters())`; a Linear(a, b) has a*b + b.",
    solution="""
    n_params_2nn = sum(p.numel() for p in MLP2NN().parameters())
    """,
)
def _check_2nn_params(n_params: Any) -> None:
    expected = 784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10
    expect(isinstance(n_params, int), f"Answer with an int, got {type(n_params).__name__}.")
    expect(
        n_params == expected,
        f"{n_params:,} is off by {n_params - expected:+,}. Did you forget the biases (one per output unit)?",
    )


@exercise(
    "02.2",
    hint="`predictions == labels` gives a bool tensor; `.float().mean()` of it is the accuracy. "
    "Per class: select the rows where labels == c first.",
    solution="""
    per_class = torch.stack([(predictions[labels == c] == c).float().mean() for c in range(10)])
    """,
)
def _check_per_class_accuracy(per_class: Any, predictions: torch.Tensor, labels: torch.Tensor) -> str:
    expect_tensor(per_class, "per_class", shape=(10,))
    expected = torch.stack([(predictions[labels == c] == c).float().mean() for c in range(10)])
    bad = ((per_class.float() - expected).abs() > 1e-6).nonzero().flatten()
    if len(bad):
        c = int(bad[0])
        raise Wrong(
            f"Class {c}: you have {per_class[c].item():.4f}, expected {expected[c].item():.4f}. "
            "Divide the correct predictions of that class by the number of test examples *of that class*."
        )
    worst = int(expected.argmin())
    return f"The hardest digit for this model is {worst} ({expected[worst].item():.1%})."


@exercise(
    "02.3",
    hint="Load into a *fresh* model with `load_checkpoint(CNN(), path)` and evaluate it on the test tensors.",
    solution="""
    restored = load_checkpoint(CNN(), checkpoint_path)
    restored_acc = evaluate(restored, x_test, y_test)[1]
    """,
)
def _check_restored(restored: Any, reference_acc: float, x_test: torch.Tensor, y_test: torch.Tensor) -> None:
    from fedtutor.training import evaluate

    expect(isinstance(restored, torch.nn.Module), f"restored should be a model, got {type(restored).__name__}.")
    acc = evaluate(restored, x_test, y_test)[1]
    expect(
        abs(acc - reference_acc) < 1e-9,
        f"The restored model scores {acc:.2%}, the trained one {reference_acc:.2%}: "
        "the weights were not loaded (a fresh model scores about 10%).",
    )
