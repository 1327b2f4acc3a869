"""Exercises of notebook 00: setup."""

from __future__ import annotations

import os
from typing import Any

from fedtutor.course.exercises._common import call_learner, exercise, expect, expect_function

_MODE_VARIABLES = ("FEDTUTOR_QUICK", "CI")


def _mode_answer(mode: Any, quick: bool) -> Any:
    """What ``mode()`` returns while the environment says quick (or full) mode; env restored after."""
    saved = {name: os.environ.get(name) for name in _MODE_VARIABLES}
    try:
        for name in _MODE_VARIABLES:
            os.environ.pop(name, None)
        if quick:
            os.environ["FEDTUTOR_QUICK"] = "1"
        return call_learner(mode, what="()")
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@exercise(
    "00.1",
    hint="Inside the function, ask `fedtutor.quick_mode()` every time it is called and return "
    '"quick" or "full" accordingly; the variable QUICK was read once, when the notebook started.',
)
def _check_mode(mode: Any) -> str:
    expect_function(mode, "mode")
    for quick in (True, False):
        answer = _mode_answer(mode, quick)
        wanted = "quick" if quick else "full"
        expect(isinstance(answer, str), f'mode() should return the string "quick" or "full", got {answer!r}.')
        expect(
            answer == wanted,
            f"With FEDTUTOR_QUICK {'=1' if quick else 'unset'}, mode() returned {answer!r} instead of {wanted!r}: "
            "ask fedtutor.quick_mode() at each call (QUICK only says what the mode was when the notebook started).",
        )
    return "mode() follows the environment: checked with FEDTUTOR_QUICK=1 and with it unset."


@exercise(
    "00.2",
    hint="`data.mnist_source()` returns a DataSource; look at its `n_train` attribute.",
)
def _check_n_train(n_train: Any) -> str:
    from fedtutor.data import mnist_source

    source = mnist_source()
    expect(
        isinstance(n_train, int) and not isinstance(n_train, bool),
        f"Answer with an int, got {type(n_train).__name__}.",
    )
    expect(
        n_train != source.n_train + source.n_test,
        f"{n_train:,} counts the {source.n_test:,} test images too; the question asks for training images.",
    )
    expect(
        n_train == source.n_train,
        f"{n_train:,} is not the size of the training set in use ({source.name}). Read it from "
        "data.mnist_source() rather than typing a number: it differs between MNIST-mini and the full MNIST.",
    )
    return f"{n_train:,} is the number of training images of {source.name}, the data set in use."
