"""Exercises of notebook 08: privacy attacks (what a gradient gives away).

The learner hands in a *function* that attacks a gradient. The check draws its own victims at
check time (fresh MNIST images, fresh models, a seed the learner never sees), computes their
gradients and compares the function's answer to the images and labels only the check holds.
So neither the notebook's ``victim`` nor a number typed into the cell can pass.
"""

from __future__ import annotations

import random
from typing import Any

import torch
import torch.nn.functional as F

from fedtutor.course.exercises._common import Wrong, call_learner, exercise, expect


def _fresh_victims(count: int, seed: int | None = None) -> list[tuple[torch.nn.Module, torch.Tensor, torch.Tensor]]:
    """``count`` (model, image, label) triples the learner cannot know in advance.

    The first model has unit 0 of its first layer switched off (a large negative bias), so a
    ReLU that never fires is always among the rows the learner's function must cope with.
    """
    from fedtutor.data import load_tensors
    from fedtutor.models import MLP2NN

    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    x, y = load_tensors()
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randperm(len(y), generator=generator)[:count]
    victims = []
    for n, i in enumerate(picks.tolist()):
        torch.manual_seed(seed + n)  # the model's initialization
        model = MLP2NN()
        if n == 0:
            with torch.no_grad():
                model.net[1].bias[0] = -1e3  # dead unit: its rows of dL/dW1 and dL/db1 are all 0
        victims.append((model, x[i : i + 1], y[i : i + 1]))
    return victims


def _gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    loss = F.cross_entropy(model(x), y)
    return [g.detach() for g in torch.autograd.grad(loss, list(model.parameters()))]


def _expect_function(value: Any, name: str, example: str) -> None:
    expect(
        callable(value),
        f"Pass your function itself, not its result: {name} should be a function of the gradients "
        f"(got a {type(value).__name__}). The check calls it on gradients of images it draws itself: {example}.",
    )


@exercise(
    "08.1",
    hint="For h = W1 x + b1, dL/dW1[i, :] = dL/db1[i] * x. In recover(grads), pick a row i whose bias gradient "
    "is not 0 (grads[1] is dL/db1) and divide row i of grads[0] by it.",
)
def _check_analytic_inversion(recover: Any) -> str:
    _expect_function(recover, "recover", "recover(grads) -> image")
    victims = _fresh_victims(3)
    for n, (model, image, label) in enumerate(victims, start=1):
        # a copy of the gradients: the learner's function may not alter the check's own
        recovered = call_learner(recover, [g.clone() for g in _gradients(model, image, label)], name="recover")
        expect(
            isinstance(recovered, torch.Tensor),
            f"recover(grads) should return a tensor, got {type(recovered).__name__}.",
        )
        expect(
            recovered.numel() == 784,
            f"recover(grads) should return 784 pixels (one row of dL/dW1), got {recovered.numel()} numbers.",
        )
        recovered = recovered.detach().double().reshape(image.shape)
        expect(
            bool(torch.isfinite(recovered).all()),
            "recover(grads) returned inf or NaN on a model where some units never fire: their rows of dL/dW1 "
            "and dL/db1 are 0, and 0/0 is NaN. Choose the row i by its bias gradient (the largest |grads[1]|), "
            "not a fixed row.",
        )
        error = (recovered - image.double()).abs().max().item()
        cosine = F.cosine_similarity(recovered.flatten(), image.double().flatten(), dim=0).abs().item()
        expect(
            error < 1e-3 or cosine < 0.99,
            "Right picture, wrong scale: divide row i of dL/dW1 by the bias gradient dL/db1[i] of the same row.",
        )
        expect(
            error < 1e-3,
            f"On test image {n} of 3 (a fresh MNIST image the check drew, not your notebook's victim), your "
            f"recovered image differs by up to {error:.3g} (cosine similarity {cosine:.2f}). Compute it from "
            "grads alone: row i of dL/dW1 divided by dL/db1[i].",
        )
    return "On 3 fresh images and models (one with a dead unit), one division recovered each image exactly."


@exercise(
    "08.2",
    hint="dL/db_c = mean over the batch of (p_bc - [y_b = c]). On a fresh model p_bc is about 0.1, so the sum over "
    "a few images stays below 1: the entries of grads[-1] below 0 are exactly the classes in the batch.",
)
def _check_batch_labels(labels_in: Any) -> str:
    _expect_function(labels_in, "labels_in", "labels_in(grads) -> set of digits")
    from fedtutor.data import load_tensors
    from fedtutor.models import MLP2NN

    seed = random.SystemRandom().randrange(2**31)
    generator = torch.Generator().manual_seed(seed)
    x, y = load_tensors()
    torch.manual_seed(seed)
    model = MLP2NN()
    for size in (1, 2, 3, 4):
        digits = torch.randperm(10, generator=generator)[:size]  # distinct labels, drawn now
        picks = [int((y == d).nonzero()[torch.randint(int((y == d).sum()), (1,), generator=generator)]) for d in digits]
        truth = set(digits.tolist())
        answer = call_learner(labels_in, [g.clone() for g in _gradients(model, x[picks], y[picks])], name="labels_in")
        if isinstance(answer, torch.Tensor):
            answer = answer.flatten().tolist()
        expect(
            isinstance(answer, (set, list, tuple)) and all(isinstance(a, int) for a in answer),
            f"labels_in(grads) should return a set of ints (digits), got {answer!r}.",
        )
        answer = set(answer)
        if answer == truth:
            continue
        expect(
            answer != {t + 1 for t in truth} and answer != {t - 1 for t in truth},
            "Off by one: every digit is 1 away. The rows of the last layer are the digits 0 to 9.",
        )
        expect(
            not (len(answer) == 1 and size > 1 and answer <= truth),
            f"You found 1 of the {size} digits in a batch of {size}: with several images there is more than one "
            "negative entry; return all of them.",
        )
        expect(
            not answer & truth or not truth - answer or answer - truth,
            f"For a batch of {size} you found {sorted(answer)}, but the batch holds {size} digits: some are missing.",
        )
        raise Wrong(
            f"For a batch of {size} fresh images (drawn by the check) you answered {sorted(answer)}; "
            f"{len(answer - truth)} of those digits are not in the batch and {len(truth - answer)} are missing. "
            "Which entries of the last layer's bias gradient grads[-1] are negative?"
        )
    return "Named the digits of 4 fresh batches (1 to 4 images, drawn by the check) from their gradients alone."
