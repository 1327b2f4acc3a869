"""Shared fixtures: every test gets its own empty cache and no FEDTUTOR_DATA, so tests never
depend on (or write to) the developer's real cache."""

from __future__ import annotations

import pytest

from fedtutor import data


@pytest.fixture(autouse=True)
def isolated_data(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("FEDTUTOR_CACHE", str(cache))
    monkeypatch.delenv("FEDTUTOR_DATA", raising=False)
    data.forget_sources()
    yield cache
    data.forget_sources()
