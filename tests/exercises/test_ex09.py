"""Exercises 09.1-09.4 (privacy defences): wrong answers are rejected with specific feedback, the solution passes.

Each case is ``(answers, feedback regex)``; ``answers`` is the tuple a learner might hand to ``check``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _support import assert_rejected

from fedtutor import privacy
from fedtutor.course import check
from fedtutor.course.exercises._common import solution_code

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _reconstruct(shares):
    return sum(shares)


def _float_share(secret, parties, generator):  # shares as floats: cannot hold all 2^64 ring values
    randoms = [torch.rand(secret.shape, generator=generator, dtype=torch.float64) for _ in range(parties - 1)]
    return [*randoms, secret.double() - sum(randoms)]


def _narrow_share(secret, parties, generator):  # random shares drawn from [0, 2^31) only: not uniform on the ring
    randoms = [torch.randint(0, 2**31, secret.shape, generator=generator) for _ in range(parties - 1)]
    return [*randoms, secret - sum(randoms)]


def _plain_share(secret, parties, generator):  # the secret itself as one share
    return [secret.clone()] + [torch.zeros_like(secret) for _ in range(parties - 1)]


def _modulo_share(secret, parties, generator):  # reduces modulo 2^32: large secrets come back wrong
    randoms = [
        torch.empty(secret.shape, dtype=torch.int64).random_(-(2**63), None, generator=generator)
        for _ in range(parties - 1)
    ]
    return [*randoms, (secret - sum(randoms)) % 2**32]


def _clip_ok(update, clip_norm):
    norm = update.norm().item()
    return update * min(1.0, clip_norm / norm) if norm > 0 else update.clone()


def _mean_ok(clipped, clip_norm, sigma, generator):
    mean = torch.stack(clipped).mean(dim=0)
    return mean + torch.randn(mean.shape, generator=generator, dtype=mean.dtype) * (sigma * clip_norm / len(clipped))


def _clamp(update, clip_norm):  # per coordinate: changes the direction
    return update.clamp(-clip_norm / 10, clip_norm / 10)


def _always_to_s(update, clip_norm):  # scales short updates up too
    return update * (clip_norm / update.norm()) if update.norm() > 0 else update


def _noise_on_sum(clipped, clip_norm, sigma, generator):  # std sigma * S on the mean (it belongs on the sum)
    mean = torch.stack(clipped).mean(dim=0)
    return mean + torch.randn(mean.shape, generator=generator, dtype=mean.dtype) * sigma * clip_norm


def _clip_the_sum(clipped, clip_norm, sigma, generator):  # server-side clipping of the total: not DP-FedAvg
    total = torch.stack(clipped).sum(dim=0)
    total = total * min(1.0, clip_norm / total.norm().item())
    return total / len(clipped) + torch.randn(total.shape, generator=generator) * (sigma * clip_norm / len(clipped))


def _unseeded(clipped, clip_norm, sigma, generator):  # ignores the generator: runs cannot be repeated
    mean = torch.stack(clipped).mean(dim=0)
    return mean + torch.randn(mean.shape, dtype=mean.dtype) * (sigma * clip_norm / len(clipped))


def _sigma_one_step_more(epsilon, rounds, delta):
    sigma = 0.01
    while privacy.dp_epsilon(sigma, rounds, delta) > epsilon:
        sigma = round(sigma + 0.01, 2)
    return round(sigma + 0.01, 2)


WRONG_ANSWERS: dict[str, list] = {
    "09.2": [
        ((..., ...), r"No answer yet"),
        ((privacy.share, privacy.reconstruct), r"uses fedtutor.privacy's share"),
        ((_float_share, _reconstruct), r"dtype torch.float64; shares are ring elements"),
        ((_plain_share, _reconstruct), r"Share 0 is the secret itself"),
        ((_narrow_share, _reconstruct), r"is not uniform on the ring"),
        ((_modulo_share, _reconstruct), r"fresh secrets wrong, e\.g\. .* came back as .*Keep every step in int64"),
    ],
    "09.3": [
        ((...,), r"No answer yet"),
        ((lambda u1, u2: u2 - u1,), r"leak returned ring elements \(int64\): decode them"),
        ((lambda u1, u2: privacy.decode(u1 - u2),), r"The sign is flipped"),
        ((lambda u1, u2: privacy.decode(u2) - privacy.decode(u1),), r"Close, but off by up to|off by up to"),
        ((lambda u1, u2: privacy.decode(u2),), r"leak is off by up to"),
    ],
    "09.1": [
        ((..., _mean_ok), r"No answer yet"),
        ((privacy.clip_update, _mean_ok), r"uses fedtutor.privacy's clip_update"),
        ((_clamp, _mean_ok), r"changed the update's direction"),
        ((_always_to_s, _mean_ok), r"already within S .* clipping only shrinks"),
        ((_clip_ok, _noise_on_sum), r"that is sigma \* S, the noise on the \*sum\*"),
        ((_clip_ok, _clip_the_sum), r"You clipped the sum\. DP-FedAvg clips each client's update, on the client"),
        ((_clip_ok, _unseeded), r"draw the noise from the generator"),
    ],
    "09.4": [
        ((...,), r"No answer yet"),
        ((1.0,), r"Pass your function smallest_sigma itself"),
        ((lambda epsilon, rounds, delta: 0.1,), r"too little noise"),
        ((_sigma_one_step_more,), r"find the smallest"),
    ],
}


@pytest.mark.parametrize(
    ("exercise_id", "answers", "feedback"),
    [(eid, a, f) for eid, cases in WRONG_ANSWERS.items() for a, f in cases],
)
def test_wrong_answer_is_rejected_with_specific_feedback(exercise_id, answers, feedback):
    assert_rejected(exercise_id, answers, feedback)


@pytest.mark.parametrize(
    ("exercise_id", "names"),
    [
        ("09.2", ("share", "reconstruct")),
        ("09.3", ("leak",)),
        ("09.1", ("clip_on_client", "noisy_mean")),
        ("09.4", ("smallest_sigma",)),
    ],
)
def test_solution_from_the_source_notebook_passes(exercise_id, names):
    path, code = solution_code(exercise_id, NOTEBOOKS)
    assert path.name == "09-privacy-defences.ipynb"
    # What the notebook's earlier cells define (decode is written in the notebook, as privacy.decode).
    namespace = {"torch": torch, "decode": privacy.decode, "dp_epsilon": privacy.dp_epsilon}
    exec(compile(code, str(path), "exec"), namespace)
    check(exercise_id, *(namespace[name] for name in names))  # raises Wrong if not accepted
