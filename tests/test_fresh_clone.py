"""A fresh clone with nothing beside it: the tests collect and the repository checks pass.

The committed HEAD is cloned into an empty temporary folder (no ``../shared``, no data cache
beside it) and a fast subset runs there with this interpreter, so a test that silently needs a
file outside the repository cannot come back. Tests needing an optional system resource skip
there with a one-line reason (tests/system.py); this run leaves FEDTUTOR_REQUIRE_SYSTEM unset, as
a learner's machine does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from system import require

REPO = Path(__file__).resolve().parents[1]
# Checks of the repository itself (lint, stripped notebooks, CI script, environment.yml): quick, and
# they read files by path, which is what breaks when something outside the clone is assumed. (The
# line-budget and notebook-numbering checks are about content, not place: the main run has them.)
SUBSET = [
    "tests/test_environment.py",
    "tests/test_repo.py::test_ruff_check_is_clean",
    "tests/test_repo.py::test_ruff_format_is_clean",
    "tests/test_repo.py::test_notebooks_are_committed_stripped_with_python3_kernel",
    "tests/test_repo.py::test_ci_runs_the_readme_test_command_verbatim",
]
# The test that once failed on every fresh clone: it needs ../shared/data/mnist-mini.
NEEDS_SHARED = "tests/test_data.py::test_mini_builder_is_reproducible"


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    require(shutil.which("git") is not None and (REPO / ".git").exists(), "needs git and a git checkout")
    where = tmp_path_factory.mktemp("fresh") / "fedtutor"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(where)], check=True, timeout=120)
    assert not (where.parent / "shared").exists()
    return where


def run_in(clone: Path, *args: str, timeout: float = 600, **extra_env: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDTUTOR_")}  # a learner's settings
    env.update(PYTHONPATH=str(clone), CI="true", PYTHONDONTWRITEBYTECODE="1", **extra_env)
    return subprocess.run([sys.executable, *args], cwd=clone, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_clone_imports_its_own_package(clone):
    result = run_in(clone, "-c", "import fedtutor; print(fedtutor.__file__)", timeout=120)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(clone), "the clone's fedtutor, not the checkout's"


def test_every_test_and_notebook_collects_in_a_fresh_clone(clone):
    result = run_in(
        clone, "-m", "pytest", "--collect-only", "-q", "--nbval-lax", "--nbval-current-env", "tests", "notebooks"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "error" not in result.stdout.lower().splitlines()[-1], result.stdout[-3000:]
    committed = subprocess.run(["git", "ls-files", "tests/*test_*.py"], cwd=clone, capture_output=True, text=True)
    collected = {line.split("::")[0] for line in result.stdout.splitlines() if "::" in line}
    assert set(committed.stdout.split()) <= collected, "a committed test file collected nothing"


def test_repository_checks_pass_in_a_fresh_clone(clone):
    result = run_in(clone, "-m", "pytest", "-q", "-rs", *SUBSET)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "passed" in result.stdout.splitlines()[-1]


def test_a_missing_system_resource_skips_with_a_reason_and_fails_when_required(clone):
    skipped = run_in(clone, "-m", "pytest", "-q", "-rs", NEEDS_SHARED, timeout=300)
    assert skipped.returncode == 0, skipped.stdout[-3000:]
    assert "1 skipped" in skipped.stdout and "shared" in skipped.stdout, skipped.stdout[-2000:]
    required = run_in(clone, "-m", "pytest", "-q", NEEDS_SHARED, timeout=300, FEDTUTOR_REQUIRE_SYSTEM="1")
    assert required.returncode == 1 and "FEDTUTOR_REQUIRE_SYSTEM=1" in required.stdout, required.stdout[-2000:]
