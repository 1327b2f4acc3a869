"""Exercises 11.1-11.3 (the Flower deployment): wrong answers are rejected with specific feedback, the
notebook's solutions pass. Each case is ``(callable building the arguments to check, feedback regex)``.
"""

from __future__ import annotations

import pytest
from _support import assert_rejected, run_exercise_cell

from fedtutor.federated import RoundHistory
from fedtutor.models import CNN, count_parameters

flwr = pytest.importorskip("flwr")
from flwr.app import ArrayRecord  # noqa: E402

from fedtutor import flower  # noqa: E402
from fedtutor.flower import DeploymentConfig  # noqa: E402


def _history() -> RoundHistory:
    """Two rounds of a 3-client run that lost a client after round 1 (the notebook's section 4, in numbers)."""
    size = count_parameters(flower.initial_model(DeploymentConfig())) * 4
    rounds = [(1, 3, 3), (2, 2, 3)]  # (round, replies, messages sent): the lost client got the model in round 2
    return RoundHistory([{"round": t, "bytes_up": up * size, "bytes_down": down * size} for t, up, down in rounds])


def _mb(history: RoundHistory, key: str | None, scale: float = 1e6) -> float:
    keys = [key] if key else ["bytes_up", "bytes_down"]
    return sum(r[k] for r in history.records for k in keys) / scale


def _distinct_digits(seed: int, **change) -> int:
    config = DeploymentConfig(**{"clients": 5, "partition": "shards", "seed": seed, **change})
    return len(flower.partition_for(config, 0, 5).y.unique())


WRONG_ANSWERS: dict[str, list] = {
    "11.1": [
        (lambda: (...,), r"No answer yet"),
        (lambda: (count_parameters(CNN()),), r"number of parameters; each float32 parameter takes 4 bytes"),
        (lambda: (count_parameters(CNN()) * 8,), r"off by \+6,653,480"),  # float64's 8 bytes
        (lambda: (count_parameters(CNN()) * 4 / 1e6,), r"Answer with an int"),  # MB, not bytes
    ],
    "11.2": [
        (lambda: (..., _history()), r"No answer yet"),
        (lambda: (_mb(_history(), "bytes_up"), _history()), r"only the uploads"),
        (lambda: (_mb(_history(), "bytes_down"), _history()), r"only the downloads"),
        (lambda: (_mb(_history(), None, 2**20), _history()), r"Divide bytes by 1e6"),
    ],
    "11.3": [
        (lambda: (..., 0), r"No answer yet"),
        (lambda: (len(flower.partition_for(DeploymentConfig(clients=5, partition="shards"), 0, 5)), 0), r"is not it"),
        (lambda: (_distinct_digits(0, partition="iid"), 0), r"partition='shards'"),  # the default partition
        (lambda: (10, 0), r"count distinct labels"),  # "all ten digits", typed in
    ],
}


@pytest.mark.parametrize(
    ("exercise_id", "make", "feedback"), [(e, m, f) for e, cases in WRONG_ANSWERS.items() for m, f in cases]
)
def test_wrong_answer_is_rejected_with_specific_feedback(exercise_id, make, feedback):
    assert_rejected(exercise_id, make(), feedback)


def test_the_notebooks_solutions_pass():
    run_exercise_cell("11.1", ArrayRecord=ArrayRecord)
    namespace = run_exercise_cell("11.2", history=_history())
    assert namespace["total_mb"] == pytest.approx(_mb(_history(), None))
    names = {"flower": flower, "DeploymentConfig": DeploymentConfig, "SEED": 0}
    assert run_exercise_cell("11.3", **names)["digits_of_client_0"] == _distinct_digits(0)
