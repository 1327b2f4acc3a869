"""Exercises of notebook 11: the Flower deployment."""

from __future__ import annotations

from typing import Any

from fedtutor.course.exercises._common import Wrong, exercise, expect


@exercise(
    "11.1",
    hint="Wrap `CNN().state_dict()` in an `ArrayRecord` and add up `.numpy().nbytes` of its arrays.",
    solution="""
    cnn_record = ArrayRecord(CNN().state_dict())
    cnn_upload_bytes = sum(array.numpy().nbytes for array in cnn_record.values())
    """,
)
def _check_cnn_upload(cnn_upload_bytes: Any) -> str:
    expected = 1_663_370 * 4  # float32 parameters of McMahan's CNN
    expect(isinstance(cnn_upload_bytes, int), f"Answer with an int (bytes), got {type(cnn_upload_bytes).__name__}.")
    expect(
        cnn_upload_bytes != 1_663_370,
        "That is the number of parameters; each float32 parameter takes 4 bytes on the wire.",
    )
    expect(
        cnn_upload_bytes == expected,
        f"{cnn_upload_bytes:,} bytes is off by {cnn_upload_bytes - expected:+,}: the CNN has 1,663,370 float32 "
        "parameters. Did you count every array of the record?",
    )
    return f"{expected / 1e6:.1f} MB per client per round, each way: 8x the 2NN."


@exercise(
    "11.2",
    hint="Each record of `history.records` has `bytes_up` and `bytes_down`; add both, over all rounds, "
    "then divide by 1e6.",
    solution="""
    total_mb = sum(r["bytes_up"] + r["bytes_down"] for r in history.records) / 1e6
    """,
)
def _check_total_mb(total_mb: Any, history: Any) -> str:
    up = sum(r["bytes_up"] for r in history.records) / 1e6
    down = sum(r["bytes_down"] for r in history.records) / 1e6
    expect(isinstance(total_mb, (int, float)), f"Answer with a number of MB, got {type(total_mb).__name__}.")
    expect(abs(total_mb - up) > 1e-9, "That is only the uploads: the global model is also sent down to every client.")
    expect(abs(total_mb - down) > 1e-9, "That is only the downloads: every client that replied also uploaded.")
    expect(
        abs(total_mb - (up + down)) < 1e-6,
        f"{total_mb:.3f} MB is not it; up {up:.3f} + down {down:.3f} = {up + down:.3f} MB. "
        "Divide bytes by 1e6 (not 2**20).",
    )
    return f"{down - up:.2f} MB more went down than up: the crashed client's download was wasted."


@exercise(
    "11.3",
    hint="`flower.partition_for(DeploymentConfig(clients=5, partition='shards', seed=SEED), 0, 5)` gives "
    "client 0's data; count the distinct values of its `.y`.",
    solution="""
    shard_client = flower.partition_for(DeploymentConfig(clients=5, partition="shards", seed=SEED), 0, 5)
    digits_of_client_0 = len(shard_client.y.unique())
    """,
)
def _check_shard_digits(digits_of_client_0: Any, seed: int) -> str:
    from fedtutor.flower import DeploymentConfig, partition_for

    client = partition_for(DeploymentConfig(clients=5, partition="shards", seed=seed), 0, 5)
    expected = len(client.y.unique())
    expect(isinstance(digits_of_client_0, int), f"Answer with an int, got {type(digits_of_client_0).__name__}.")
    expect(
        digits_of_client_0 == expected,
        f"{digits_of_client_0} is not it. Use partition='shards' with 5 clients and seed={seed}, "
        "then count distinct labels (not examples).",
    )
    return f"Client 0 holds {expected} digit(s): on a real deployment, no one could see that but client 0."


def _halving(lr: float, server_round: int) -> float:
    return lr * 0.5 ** (server_round - 1)  # round 1 trains with the configured lr


def _same(a: Any, b: float) -> bool:
    return isinstance(a, (int, float)) and abs(a - b) <= 1e-9 * max(1.0, abs(b))


@exercise(
    "11.4",
    hint="Two edits. In flower_app_lr/server_app.py, `round_config` returns "
    '`{"server-round": server_round, "lr": ...}` with the lr halved every round after the first; in '
    'flower_app_lr/client_app.py, `lr = float(settings["lr"])`. Save both, then replace the placeholder '
    "with `exercise_app = lr_app`.",
)
def _check_lr_schedule(lr_history: Any) -> str:
    from fedtutor.federated import RoundHistory

    expect(
        isinstance(lr_history, RoundHistory),
        f"Pass the history that launcher.run_deployment returned, got {type(lr_history).__name__}.",
    )
    records = lr_history.records
    expect(
        len(records) >= 2 and all("client_lr" in r and "round_config" in r for r in records),
        "These records do not say which lr each client used (or hold fewer than 2 rounds): pass the history of "
        "this cell's run, `launcher.run_deployment(lr_config, app=exercise_app)`.",
    )
    base = lr_history.config["lr"]
    sent = [r["round_config"].get("lr") for r in records]
    used = [r["client_lr"] for r in records]
    expect(all(r["clients"] for r in records), "A round in these records has no client reply; run the cell again.")
    expect(
        all(isinstance(lr, (int, float)) for lrs in used for lr in lrs),
        'The clients\' replies do not report their lr: keep `"lr": lr` in the MetricRecord of client_app.py.',
    )
    unchanged = all(_same(lr, base) for lrs in used for lr in lrs)
    if all(s is None for s in sent):
        expect(
            not unchanged,
            f"The app is unchanged: the ServerApp sent no lr with any round, and every client trained with "
            f"{base:g} (the run config's lr) in every round. Edit round_config in server_app.py and the lr line "
            "in client_app.py, save both files, and run the cell again.",
        )
        raise Wrong(
            f"The clients trained with {used[0][0]:g} in round 1 and {used[1][0]:g} in round 2, but the ServerApp sent "
            "no lr: the server decides the schedule and sends it in the round's config (round_config in "
            'server_app.py returns {"server-round": ..., "lr": ...}); the ClientApp reads it.',
        )
    for t, s in enumerate(sent, start=1):
        expect(s is not None, f"The ServerApp sent an lr in some rounds but not in round {t}: send it every round.")
        if t == 1:
            expect(
                not _same(s, base / 2),
                f"Round 1 sent lr {s:g}, half of {base:g} already: off by one round. Round 1 trains with the "
                "configured lr; halving starts in round 2: `config.lr * 0.5 ** (server_round - 1)`.",
            )
        expect(
            _same(s, _halving(base, t)),
            f"Round {t}: the ServerApp sent lr {s!r}, expected {_halving(base, t):g} ({base:g} halved every round "
            "after the first).",
        )
    for t, (s, lrs) in enumerate(zip(sent, used, strict=True), start=1):
        if not all(_same(lr, s) for lr in lrs):
            expect(
                not unchanged,
                f"The ServerApp sends the lr, but the ClientApp ignores it: every client trained with {base:g} "
                f"(the run config's lr) in every round, while round {t} sent {s:g}. In client_app.py, read it "
                'from this round\'s config: `lr = float(settings["lr"])`.',
            )
            raise Wrong(f"Round {t}: the server sent lr {s:g}, but the clients report training with {lrs}.")
    schedule = ", ".join(f"{s:g}" for s in sent)
    return (
        f"The run's records show the ServerApp sent lr {schedule} in rounds 1-{len(sent)}, and every client "
        "that replied reported training with the lr of its round."
    )
