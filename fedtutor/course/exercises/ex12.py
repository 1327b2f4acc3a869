"""Exercises of notebook 12: the classroom federation (the threat model, the live view's records)."""

from __future__ import annotations

from typing import Any

from fedtutor.course.exercises._common import exercise, expect

# 12.1: who sees what of one student's update. The options are the notebook's ``OPTIONS``.
OPTIONS = ("nothing", "encrypted bytes", "each update", "only the sum")
WHO_SEES = {
    "someone on the campus Wi-Fi": (
        "encrypted bytes",
        {
            "nothing": "The eavesdropper does capture the traffic; TLS makes it unreadable, not invisible "
            "(its size and timing still show).",
            "each update": "TLS encrypts every connection from the SuperNode to the server: on the Wi-Fi the "
            "update is ciphertext.",
        },
    ),
    "a stranger without an enrolled key": (
        "nothing",
        {
            "encrypted bytes": "The stranger's own connection is encrypted, but it never carries a student's "
            "update: its key is refused before any message is handed out.",
            "each update": "SuperNode authentication refuses an unenrolled key, so the stranger gets no message "
            "and sees no update.",
        },
    ),
    "the instructor's server": (
        "each update",
        {
            "encrypted bytes": "TLS ends at the server: the instructor's machine decrypts each update to average it.",
            "only the sum": "Without secure aggregation the server receives every student's update in full; "
            "only the sum is what SecAgg+ would leave it.",
        },
    ),
    "the instructor's server, with SecAgg+": (
        "only the sum",
        {
            "nothing": "The server still needs the sum of the updates to compute the new global model.",
            "each update": "With SecAgg+ each update arrives masked; only the masks of the sum cancel.",
            "encrypted bytes": "With SecAgg+ the server can unmask the sum (the masks cancel), not just ciphertext.",
        },
    ),
}


@exercise(
    "12.1",
    hint="TLS protects the wire, authentication keeps strangers out, and only secure aggregation hides "
    "individual updates from the server. Fill every key with one of OPTIONS.",
)
def _check_threat_model(who_sees_what: Any) -> str:
    expect(isinstance(who_sees_what, dict), f"Answer with a dict, got {type(who_sees_what).__name__}.")
    missing = [who for who in WHO_SEES if who not in who_sees_what]
    expect(not missing, f"Answer for every party; missing: {', '.join(repr(m) for m in missing)}.")
    extra = [who for who in who_sees_what if who not in WHO_SEES]
    expect(not extra, f"Unknown part(ies) {', '.join(repr(e) for e in extra)}: keep the keys of the template.")
    for who, answer in who_sees_what.items():
        expect(answer in OPTIONS, f"{who}: {answer!r} is not one of OPTIONS {OPTIONS}.")
    for who, (right, feedback) in WHO_SEES.items():
        answer = who_sees_what[who]
        expect(answer == right, f"{who}: not {answer!r}. " + feedback.get(answer, "Think about what reaches it."))
    return "TLS hides updates from the network, keys keep strangers out, and only SecAgg+ hides them from the server."


@exercise(
    "12.2",
    hint="Each record of `view.records` lists the students who contributed to that round in `students` "
    "(student numbers; `clients` are partition ids, one less). Collect, for every enrolled student, the rounds.",
)
def _check_rounds_of(rounds_of: Any, records: Any, students: Any) -> str:
    expected = {k: [r["round"] for r in records if k in r["students"]] for k in range(1, students + 1)}
    expect(isinstance(rounds_of, dict), f"Answer with a dict {{student: [rounds]}}, got {type(rounds_of).__name__}.")
    expect(
        0 not in rounds_of,
        "Key 0 is a partition id: student k trains partition k-1. Use the record's `students`, not `clients`.",
    )
    expect(
        sorted(rounds_of) == sorted(expected),
        f"Give one entry per enrolled student ({sorted(expected)}), also for one who contributed to no round; "
        f"got {sorted(rounds_of)}.",
    )
    for k, rounds in expected.items():
        got = rounds_of[k]
        expect(
            isinstance(got, list),
            f"Student {k}: give the list of rounds (like {rounds}), got {type(got).__name__}.",
        )
        extra = sorted(set(got) - set(rounds))
        connected = [r["round"] for r in records if r["round"] in extra and k in r.get("connected", [])]
        expect(
            not connected,
            f"Student {k} was still counted as connected in round(s) {connected}, but did not contribute: "
            "use `students`, not `connected`.",
        )
        expect(not extra, f"Student {k} did not contribute to round(s) {extra}: it was lost or away.")
        missing = sorted(set(rounds) - set(got))
        expect(not missing, f"Student {k} also contributed to round(s) {missing}: look at every record.")
        expect(got == rounds, f"Student {k}: list each round once, in order (got {got}).")
    lost = [k for k, rounds in expected.items() if len(rounds) < len(records)]
    return f"{len(expected)} students, {len(records)} rounds; students who missed a round: {lost or 'none'}."
