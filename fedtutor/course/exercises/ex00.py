"""Exercises of notebook 00: setup."""

from __future__ import annotations

from typing import Any

from fedtutor.course.exercises._common import exercise, expect


@exercise(
    "00.1",
    hint="`fedtutor.quick_mode()` returns a bool; the environment variable that forces it is FEDTUTOR_QUICK.",
    solution="""
    answer = fedtutor.quick_mode()
    """,
)
def _check_quick_mode(answer: Any) -> str:
    import fedtutor

    expect(isinstance(answer, bool), f"Answer with a bool (True/False), got {type(answer).__name__}.")
    actual = fedtutor.quick_mode()
    expect(answer == actual, f"This kernel is in {'quick' if actual else 'full'} mode; you answered {answer}.")
    return f"You are in {'quick' if actual else 'full'} mode."


@exercise(
    "00.2",
    hint="`fedtutor.data.mnist_source()` returns a DataSource; look at its `n_train` attribute.",
    solution="""
    n_train = fedtutor.data.mnist_source().n_train
    """,
)
def _check_n_train(n_train: Any) -> str:
    from fedtutor.data import mnist_source

    source = mnist_source()
    expect(isinstance(n_train, int), f"Answer with an int, got {type(n_train).__name__}.")
    expect(
        n_train == source.n_train,
        f"{n_train:,} is not it: the data in use is {source.name}. Did you count test images too?",
    )
    return f"{source.name} has {n_train:,} training images."
