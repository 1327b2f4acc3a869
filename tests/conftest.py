"""Shared fixtures: every test gets its own empty cache and no FEDTUTOR_DATA, so tests never
depend on (or write to) the developer's real cache; the 60,000-image MNIST stand-in; and the
rule for optional system resources."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from system import require

from fedtutor import data

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "standin: runs course notebooks on the 60,000-image MNIST stand-in (issue 17; about a minute)"
    )


@pytest.fixture(autouse=True)
def isolated_data(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("FEDTUTOR_CACHE", str(cache))
    monkeypatch.delenv("FEDTUTOR_DATA", raising=False)
    data.forget_sources()
    yield cache
    data.forget_sources()


@pytest.fixture
def require_system():
    """``require_system(reason)`` when an optional system resource (a Debian package, a folder beside
    the checkout) is missing: a skip with that one-line reason, or a failure when
    FEDTUTOR_REQUIRE_SYSTEM=1 (CI sets it, so there the resource must be present)."""

    return lambda reason: require(False, reason)


def load_script(path: Path):
    """Import a script (scripts/, benchmarks/) as a module, without it being a package."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def standin_maker():
    """scripts/make_mnist_standin.py, imported."""
    return load_script(REPO / "scripts" / "make_mnist_standin.py")


@pytest.fixture(scope="session")
def fashion_mnist():
    """benchmarks/fashion_mnist.py (the Flower benchmark's Fashion-MNIST loader), imported."""
    return load_script(REPO / "benchmarks" / "fashion_mnist.py")


@pytest.fixture(scope="session")
def standin(tmp_path_factory, standin_maker) -> Path:
    """A folder with the 60,000-image MNIST stand-in (built once per test session, about 5 s)."""
    return standin_maker.make_standin(tmp_path_factory.mktemp("standin") / "mnist-standin")
