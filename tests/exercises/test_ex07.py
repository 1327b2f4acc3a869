"""Exercises 07.1-07.3 (non-IID data): wrong answers are rejected with specific feedback, the notebook's
solution passes. Each case is ``(arguments to check, feedback regex)``; callables build them on demand.
"""

from __future__ import annotations

import pytest
import torch
from _support import assert_rejected, run_exercise_cell


def _prox(power=2, factor=0.5, detach=False, sign=1):
    def proximal_term(model, global_model, mu):
        total = sum(
            ((w - w0.detach()) ** 2).sum() for w, w0 in zip(model.parameters(), global_model.parameters(), strict=True)
        )
        value = sign * factor * mu * (total if power == 2 else total.sqrt())
        return value.detach() if detach else value

    return proximal_term


WRONG_ANSWERS: dict[str, list] = {
    "07.1": [
        (lambda: (...,), r"No answer yet"),
        (lambda: (torch.full((10,), 2),), r"should be a function"),  # "two digits per client", typed in
        (lambda: (lambda labels, parts: torch.tensor([len(p) for p in parts]),), r"numbers of examples per client"),
        (
            lambda: (lambda labels, parts: torch.tensor([max(1, labels[p].unique().numel()) for p in parts]),),
            r"A client with no data holds 0 digits",
        ),
        (lambda: (lambda labels, parts: torch.full((len(parts),), 2),), r"client \d+ holds \d+ different digits"),
    ],  # fmt: skip
    "07.2": [
        (lambda: (...,), r"No answer yet"),
        (lambda: (_prox(factor=1.0),), r"twice the term: FedProx uses mu / 2"),
        (lambda: (_prox(power=1),), r"uses the norm; the term uses the \*squared\* norm"),
        (lambda: (_prox(sign=-1),), r"positive \(mind the sign\)"),
        (lambda: (_prox(detach=True),), r"carries no gradient"),
        (lambda: (lambda m, g, mu: float(_prox()(m, g, mu)),), r"return the tensor itself"),
    ],
    "07.3": [
        (lambda: (...,), r"No answer yet"),
        (lambda: (lambda deltas, weights: torch.stack(deltas).mean(0),), r"That is the plain mean"),
        (lambda: (lambda d, w: (torch.stack(d) * (w / w.sum()).float()[:, None]).sum(0),), r"outside the range"),
        (lambda: (lambda deltas, weights: torch.stack(deltas).median(dim=0),), r"return its .values"),
        (lambda: (lambda deltas, weights: torch.stack(deltas).median(),), r"should return one update of shape"),
    ],
}


@pytest.mark.parametrize(
    ("exercise_id", "make", "feedback"), [(e, m, f) for e, cases in WRONG_ANSWERS.items() for m, f in cases]
)
def test_wrong_answer_is_rejected_with_specific_feedback(exercise_id, make, feedback):
    assert_rejected(exercise_id, make(), feedback)


@pytest.mark.parametrize("exercise_id", ["07.2", "07.3"])
def test_the_notebooks_solution_passes(exercise_id):
    run_exercise_cell(exercise_id)


def test_the_notebooks_solution_of_07_1_passes():
    from fedtutor.data import load_tensors, shards

    _, y = load_tensors(train=True)
    y = y[:600]
    namespace = run_exercise_cell("07.1", y_train=y, partitions={"shards (2 per client)": shards(y, 10, 2, seed=0)})
    assert int(namespace["shard_digits"].max()) <= 2
