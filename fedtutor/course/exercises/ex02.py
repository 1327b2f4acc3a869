"""Exercises of notebook 02: the MNIST classifier. Answers are functions or models, checked on inputs
the learner never saw, so a number typed from an earlier cell cannot pass."""

from __future__ import annotations

import tempfile
from pathlib import Path
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
    given_inputs,
    learner,
)


def _random_net(g: torch.Generator) -> nn.Module:
    """An MLP of this learner's own widths, with a bias-free layer and a BatchNorm (whose buffers are no parameters)."""
    a, b = (int(v) for v in torch.randint(20, 90, (2,), generator=g))
    return nn.Sequential(nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU(), nn.Linear(b, 7, bias=False))


@exercise(
    "02.1",
    hint="Loop over `model.parameters()` and add up each tensor's `.numel()` (the number of entries it holds).",
)
def _check_count_params(count_params: Any) -> str:
    from fedtutor.models import CNN, MLP2NN

    expect_function(count_params, "count_params")
    models = {
        "the 2NN": MLP2NN(),
        "the CNN": CNN(),
        "an MLP of the checker's": _random_net(torch.Generator().manual_seed(7)),
    }
    for name, model in models.items():
        answer = call_learner(count_params, model, what=f"on {name}")
        expected = sum(p.numel() for p in model.parameters())
        expect(
            isinstance(answer, int) and not isinstance(answer, bool),
            f"count_params({name}) returned {answer!r}; return an int (`.numel()` gives ints, sum them).",
        )
        tensors = len(list(model.parameters()))
        expect(answer != tensors, f"{answer} for {name} is the number of parameter *tensors*; add up their numel().")
        in_state = sum(v.numel() for v in model.state_dict().values())
        expect(
            answer != in_state or in_state == expected,
            f"{answer:,} for {name} counts the state_dict, which also holds buffers (BatchNorm's running "
            "statistics) that are not trained: count model.parameters().",
        )
        expect(
            answer == expected,
            f"count_params({name}) = {answer:,}, but it has {expected:,} parameters (off by {answer - expected:+,})."
            " Did you skip the biases, or count only some layers?",
        )
    return "count_params is right for the 2NN, the CNN and an MLP you had not seen."


def _accuracy_inputs(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.cat([torch.arange(10), torch.randint(0, 10, (190,), generator=g)])  # (200,) every digit present
    wrong = torch.rand(200, generator=g) < torch.rand(10, generator=g)[labels] * 0.6  # a different error rate per digit
    predictions = torch.where(wrong, (labels + torch.randint(1, 10, (200,), generator=g)) % 10, labels)
    return predictions, labels


@exercise(
    "02.2",
    hint="For each digit c, take the rows where labels == c and average (predictions[rows] == c).float(); "
    "torch.stack the ten numbers.",
    given=_accuracy_inputs,
)
def _check_per_class_accuracy(per_class_accuracy: Any) -> str:
    expect_function(per_class_accuracy, "per_class_accuracy")
    predictions, labels = given_inputs("02.2")
    per_class = call_learner(per_class_accuracy, predictions.clone(), labels.clone(), what="(predictions, labels)")
    expect_tensor(per_class, "per_class_accuracy(predictions, labels)", shape=(10,))
    expected = torch.stack([(predictions[labels == c] == c).float().mean() for c in range(10)])
    share = torch.stack([(predictions[labels == c] == c).float().sum() / len(labels) for c in range(10)])
    precision = torch.stack([(labels[predictions == c] == c).float().mean() for c in range(10)])
    if torch.allclose(per_class.float(), share):
        raise Wrong("You divided by all test examples; divide by the number of examples *of that digit*.")
    if torch.allclose(per_class.float(), precision) and not torch.allclose(precision, expected):
        raise Wrong(
            "You selected the rows the model *predicted* as c (that is precision); select the rows whose label is c."
        )
    bad = ((per_class.float() - expected).abs() > 1e-6).nonzero().flatten()
    if len(bad):
        c = int(bad[0])
        raise Wrong(
            f"On inputs of the checker's, digit {c} gets {per_class[c].item():.4f}, expected {expected[c].item():.4f}: "
            "the share of the examples labelled c that were predicted c."
        )
    return "per_class_accuracy matches on predictions and labels you had not seen."


_CHECKPOINTS: dict[str, Path] = {}  # learner -> the colleague's checkpoint written for them this session


def _colleague_state(g: torch.Generator) -> dict[str, torch.Tensor]:
    from fedtutor.models import MLP2NN

    return {k: torch.randn(v.shape, generator=g) * 0.05 for k, v in MLP2NN().state_dict().items()}


def _colleague_checkpoint(g: torch.Generator) -> Path:
    path = _CHECKPOINTS.get(learner())
    if path is None or not path.is_file():
        path = Path(tempfile.mkdtemp(prefix="fedtutor-02.3-")) / "colleague.pt"
        torch.save(_colleague_state(g), path)
        _CHECKPOINTS[learner()] = path
    return path


@exercise(
    "02.3",
    hint="The colleague trained one of the two models of section 3. `load_checkpoint(CNN(), colleague_path)` "
    "refuses a file saved from another architecture; then try a fresh MLP2NN().",
    given=_colleague_checkpoint,
)
def _check_restored(restored: Any, model: Any) -> str:
    from fedtutor.course.exercises._common import learner_generator

    expected = _colleague_state(learner_generator("02.3"))
    expect(
        not isinstance(restored, dict),
        "restored is a dict of tensors (a state_dict): load it into a fresh model, "
        "e.g. load_checkpoint(MLP2NN(), path).",
    )
    expect(isinstance(restored, nn.Module), f"restored should be a model (nn.Module), got {type(restored).__name__}.")
    expect(
        restored is not model,
        "restored is your trained CNN itself: build a *fresh* model and load the colleague's file into it.",
    )
    state = restored.state_dict()
    expect(
        set(state) == set(expected) and all(state[k].shape == expected[k].shape for k in expected),
        f"restored is a {type(restored).__name__} whose layers differ from the checkpoint's (a 2NN, 784-200-200-10): "
        "load it into the architecture that saved it.",
    )
    differs = [k for k in expected if not torch.equal(state[k], expected[k])]
    if differs:
        raise Wrong(
            f"restored has the right architecture, but {differs[0]} does not hold the checkpoint's values: "
            "load the file (load_checkpoint) instead of using freshly initialised weights."
        )
    return "restored holds exactly the weights of the checkpoint written for you."
