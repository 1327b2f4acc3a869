"""Optional system resources in tests: a skip with a one-line reason, or a failure in CI.

A test that needs something beyond Python (a Debian package, Chromium, root for network
namespaces, a folder beside the checkout) calls ``require(ok, reason)``. On a learner's fresh
clone a missing resource skips that test; with ``FEDTUTOR_REQUIRE_SYSTEM=1`` (``.ci/run`` sets it)
it fails, so CI cannot pass by skipping.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_VARIABLE = "FEDTUTOR_REQUIRE_SYSTEM"


def required() -> bool:
    """True when missing system resources must fail the test run (CI)."""
    return os.environ.get(REQUIRE_VARIABLE) == "1"


def require(ok: bool, reason: str) -> None:
    """Go on when ``ok``; otherwise skip with ``reason`` (one line), or fail when CI requires it."""
    if ok:
        return
    reason = " ".join(reason.split())  # one line, whatever the caller wrote
    if required():
        pytest.fail(f"{reason}; {REQUIRE_VARIABLE}=1 says it must be present here", pytrace=False)
    pytest.skip(reason)
