"""Exercises 11.1-11.4 (the Flower deployment): wrong answers are rejected with specific feedback, the
notebook's solutions pass. Each case is ``(callable building the arguments to check, feedback regex)``.
11.4's wrong answers are the records such apps write; its solution runs on real Flower processes in
notebook 11 itself (nbval executes the source notebook, and a wrong answer there raises).
"""

from __future__ import annotations

import pytest
from _support import assert_rejected, run_exercise_cell

from fedtutor.course.exercises import check
from fedtutor.federated import RoundHistory
from fedtutor.models import CNN, count_parameters

flwr = pytest.importorskip("flwr")
from flwr.app import ArrayRecord  # noqa: E402

from fedtutor import flower  # noqa: E402
from fedtutor.course import flower_app, launcher  # noqa: E402
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


def _lr_run(sent, used, rounds: int = 3, lr: float = 0.05) -> RoundHistory:
    """The records of a 2-client run whose ServerApp sent ``sent(t)`` (None: no lr) and whose clients trained
    with ``used(t, sent_lr)``, as fedtutor.flower.fedavg_rounds writes them."""
    records = []
    for t in range(1, rounds + 1):
        sent_lr = sent(t)
        config = {"server-round": t, **({} if sent_lr is None else {"lr": sent_lr})}
        records.append({"round": t, "clients": [0, 1], "client_lr": [used(t, sent_lr)] * 2, "round_config": config})
    return RoundHistory(records, config={"lr": lr, "app": "/somewhere/flower_app_lr"})


def _halved(t: int) -> float:
    return 0.05 * 0.5 ** (t - 1)


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
    "11.4": [
        (lambda: (...,), r"No answer yet"),
        (lambda: (_lr_run(lambda t: None, lambda t, s: 0.05),), r"app is unchanged"),  # the template as it is
        (lambda: (_lr_run(lambda t: None, lambda t, s: 0.025),), r"the ServerApp sent no lr"),  # client-side constant
        (
            lambda: (_lr_run(lambda t: None, lambda t, s: _halved(t)),),
            r"the server decides the schedule",
        ),  # client-only
        (lambda: (_lr_run(_halved, lambda t, s: 0.05),), r"the ClientApp ignores it"),  # sent, then ignored
        (lambda: (_lr_run(lambda t: _halved(t + 1), lambda t, s: s),), r"off by one round"),  # halved from round 1
        (lambda: (_lr_run(lambda t: 0.05 * 0.9 ** (t - 1), lambda t, s: s),), r"Round 2: the ServerApp sent lr"),
        (lambda: (RoundHistory([{"round": 1, "test_acc": 0.9}], config={"lr": 0.05}),), r"do not say which lr"),
        (lambda: ([0.05, 0.025, 0.0125],), r"Pass the history"),  # the schedule typed in
        (lambda: (_lr_run(_halved, lambda t, s: None),), r"do not report their lr"),  # the metric removed
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


def test_a_halving_schedule_the_clients_followed_passes(capsys):
    assert check("11.4", _lr_run(_halved, lambda t, s: s)) is None
    assert "sent lr 0.05, 0.025, 0.0125 in rounds 1-3" in capsys.readouterr().out


def test_copy_app_writes_missing_files_and_never_replaces_a_learners(tmp_path):
    folder = tmp_path / "flower_app"
    assert flower_app.copy_app(folder) == {"client_app.py": "written", "server_app.py": "written"}
    (folder / "server_app.py").write_text("# my edit\n")
    (folder / "client_app.py").unlink()
    assert flower_app.copy_app(folder) == {"client_app.py": "written", "server_app.py": "kept"}
    assert (folder / "server_app.py").read_text() == "# my edit\n"
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        flower_app.copy_app(tmp_path / "a_file")


def test_an_app_folder_without_the_two_files_is_refused_before_anything_starts(tmp_path):
    (tmp_path / "client_app.py").write_text("")
    with pytest.raises(ValueError, match=r"has no server_app\.py\. Fix: fedtutor\.course\.flower_app\.copy_app"):
        launcher.run_deployment(DeploymentConfig(clients=1, rounds=1), app=tmp_path, echo=lambda line: None)
