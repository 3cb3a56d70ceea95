"""Shared fixtures: an isolated store per test session, and captured graphs reused across tests."""
from __future__ import annotations

import functools

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_store(tmp_path_factory):
    """Never touch the user's cache: every test run gets its own SQLite store."""
    import os

    path = tmp_path_factory.mktemp("store") / "store.sqlite"
    old = os.environ.get("NETFRONTIER_STORE")
    os.environ["NETFRONTIER_STORE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("NETFRONTIER_STORE", None)
    else:
        os.environ["NETFRONTIER_STORE"] = old


@functools.lru_cache(maxsize=32)
def captured(name: str, batch: int = 1):
    """Capture a zoo model once per test session."""
    from netfrontier.models.registry import capture

    return capture(name, batch=batch)
