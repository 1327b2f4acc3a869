"""Exercises of notebook 11: the Flower deployment."""

from __future__ import annotations

from typing import Any

from fedtutor.course.exercises._common import exercise, expect


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
