"""Fixtures for the serve tests: a small zoo in a store, the app on a free 127.0.0.1 port in a
thread, an HTTP helper, and headless Chromium driven by selenium (netfrontier.serve.browser).

The store is built once per test run (a file lock shares it between xdist workers) by
zoo.zoo_rows, which captures in worker processes, exactly as `netfrontier zoo` does.
"""
from __future__ import annotations

import fcntl
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

# resnet18, mobilenet_v2 and mobilenet_v3_small (ImageNet V1 weights): two families, a frontier,
# and, on tpu-v1, layers that fall back to the host (hardswish)
SMALL_ZOO = "[rm]*[!5][28l].IMAGENET1K_V1"
SMALL_MODELS = {"resnet18.IMAGENET1K_V1", "mobilenet_v2.IMAGENET1K_V1",
                "mobilenet_v3_small.IMAGENET1K_V1"}
REPO = Path(__file__).resolve().parents[1]
WAIT_S = 30.0


def build_store(path: Path) -> Path:
    from netfrontier.store import Store
    from netfrontier.zoo import zoo_rows

    store = Store(path)
    try:
        rows = zoo_rows("img-series4-1core", SMALL_ZOO, store=store, workers=1)
    finally:
        store.close()
    assert {r["model"] for r in rows} == SMALL_MODELS
    return path


@pytest.fixture(scope="session")
def serve_store(tmp_path_factory) -> Path:
    """One store for the whole run, shared by the xdist workers (each has its own basetemp
    under the run's)."""
    import os

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path, done = root / "serve-store.sqlite", root / "serve-store.done"
    with open(root / "serve-store.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            path.unlink(missing_ok=True)
            build_store(path)
            done.write_text("ok")
    return path


@pytest.fixture(scope="session")
def served(serve_store):
    """(base URL, ZooState) of one server over the small zoo for the session."""
    from netfrontier.serve import ZooState, create_app
    from netfrontier.serve.app import serve_in_thread

    state = ZooState(serve_store)
    state.load()
    with serve_in_thread(create_app(state, REPO / "benchmarks" / "results"), WAIT_S) as url:
        yield url, state


@pytest.fixture
def url(served) -> str:
    return served[0]


def call(base: str, path: str, body=None, *, method: str | None = None,
         headers: dict | None = None, raw: bytes | None = None):
    """(status, headers, parsed JSON or text) of one request; errors are returned, not raised."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json"} if data is not None else {}
    hdrs.update(headers or {})
    req = urllib.request.Request(base + path, data=data, headers=hdrs, method=method)
    try:
        with urllib.request.urlopen(req, timeout=WAIT_S) as res:
            status, h, payload = res.status, res.headers, res.read()
    except urllib.error.HTTPError as exc:
        status, h, payload = exc.code, exc.headers, exc.read()
    text = payload.decode("utf-8", "replace")
    if "json" in (h.get("content-type") or ""):
        return status, h, json.loads(text)
    return status, h, text


# the browser ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    from netfrontier.serve.browser import start_chrome

    try:
        driver = start_chrome(tmp_path_factory.mktemp("chromium-profile"), timeout_s=WAIT_S)
    except FileNotFoundError as exc:  # never a skip: CI must run these
        pytest.fail(f"{exc} (make test runs it first)")
    yield driver
    driver.quit()


def console_errors(driver, allow: tuple[str, ...] = ()) -> list[str]:
    """SEVERE browser log entries since the last call (each call drains the log)."""
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and not any(a in e["message"] for a in allow)]
