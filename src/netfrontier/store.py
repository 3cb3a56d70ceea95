"""The embedded SQLite store: captured graphs, cost totals, measurements, cached registries.

Keys carry everything a result depends on (model, resolution, batch, bits, spec hash, tool and
library versions), so a stale entry is never returned; a repeated zoo run reads instead of
recomputing. Each write commits at once: an interrupted job resumes where it stopped.
"""
from __future__ import annotations

import functools
import json
import os
import sqlite3
import zlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS graphs (key TEXT PRIMARY KEY, model TEXT, resolution INT, batch INT,
    blob BLOB);
CREATE TABLE IF NOT EXISTS costs (key TEXT PRIMARY KEY, model TEXT, hardware TEXT, totals TEXT);
CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS measurements (id INTEGER PRIMARY KEY AUTOINCREMENT, model TEXT,
    device TEXT, runtime TEXT, dtype TEXT, batch INT, resolution INT, median_s REAL, p90_s REAL,
    min_s REAL, runs INT, env TEXT, created TEXT DEFAULT CURRENT_TIMESTAMP);
CREATE INDEX IF NOT EXISTS measurements_key ON measurements (model, device, runtime, dtype, batch);
"""


def lib_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "none"


def tool_version() -> str:
    from netfrontier import __version__

    return __version__


def default_path() -> Path:
    env = os.environ.get("NETFRONTIER_STORE")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "netfrontier" / "store.sqlite"


def _guarded(method):
    """A failing SQLite call (read-only file, disk full, locked) is one StoreError line."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            from netfrontier.errors import StoreError

            raise StoreError(f"store '{self.path}': {' '.join(str(exc).split())}") from None
    return call


class Store:
    """A thin, explicit wrapper over one SQLite file."""

    def __init__(self, path: str | Path | None = None):
        from netfrontier.errors import StoreError

        self.path = Path(path) if path else default_path()
        where = "--store" if path else ("$NETFRONTIER_STORE" if os.environ.get(
            "NETFRONTIER_STORE") else "the store")
        if self.path.is_dir():
            raise StoreError(f"{where} '{self.path}' is a directory, not an SQLite file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{where} '{self.path}' is not a usable SQLite store "
                             f"({' '.join(str(exc).split())})") from None

    def close(self) -> None:
        self.db.close()

    # graphs -----------------------------------------------------------------------------------
    @staticmethod
    def graph_key(model: str, resolution: int, batch: int) -> str:
        from netfrontier.graph.types import CAPTURE_REVISION

        return "|".join([model, str(resolution), str(batch), tool_version(),
                         f"capture{CAPTURE_REVISION}",
                         lib_version("torch"), lib_version("torchvision"), lib_version("timm")])

    @_guarded
    def put_graph(self, key: str, model: str, resolution: int, batch: int, graph_json: str) -> None:
        blob = zlib.compress(graph_json.encode(), 6)
        self.db.execute("INSERT OR REPLACE INTO graphs VALUES (?,?,?,?,?)",
                        (key, model, resolution, batch, blob))
        self.db.commit()

    @_guarded
    def get_graph(self, key: str):
        row = self.db.execute("SELECT blob FROM graphs WHERE key=?", (key,)).fetchone()
        if not row:
            return None
        from netfrontier.graph.types import OpGraph

        return OpGraph.from_json(zlib.decompress(row[0]).decode())

    # cost totals ------------------------------------------------------------------------------
    @staticmethod
    def cost_key(model: str, resolution: int, batch: int, wbits, abits, spec_digest: str,
                 extra: str = "") -> str:
        return "|".join([model, str(resolution), str(batch), str(wbits), str(abits), spec_digest,
                         extra, tool_version(), lib_version("torch"), lib_version("torchvision")])

    @_guarded
    def put_cost(self, key: str, model: str, hardware: str, totals: dict) -> None:
        self.db.execute("INSERT OR REPLACE INTO costs VALUES (?,?,?,?)",
                        (key, model, hardware, json.dumps(totals)))
        self.db.commit()

    @_guarded
    def get_costs(self, keys: list[str]) -> dict[str, dict]:
        out = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = f"SELECT key, totals FROM costs WHERE key IN ({','.join('?' * len(chunk))})"
            out.update({k: json.loads(v) for k, v in self.db.execute(q, chunk)})
        return out

    # small cached values (e.g. the torchvision registry, to list the zoo without torch) --------
    @_guarded
    def get_cached(self, key: str):
        row = self.db.execute("SELECT value FROM cache WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    @_guarded
    def put_cached(self, key: str, value) -> None:
        self.db.execute("INSERT OR REPLACE INTO cache VALUES (?,?)", (key, json.dumps(value)))
        self.db.commit()

    # measurements -----------------------------------------------------------------------------
    @_guarded
    def put_measurement(self, m: dict) -> None:
        self.db.execute(
            "INSERT INTO measurements (model, device, runtime, dtype, batch, resolution, median_s,"
            " p90_s, min_s, runs, env) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (m["model"], m["device"], m["runtime"], m["dtype"], m["batch"], m["resolution"],
             m["median_s"], m["p90_s"], m["min_s"], m["runs"], json.dumps(m.get("env", {}))))
        self.db.commit()

    @_guarded
    def latest_measurements(self, device: str | None = None, runtime: str | None = None,
                            dtype: str | None = None, batch: int | None = None) -> dict:
        """The newest measurement per (model, device, runtime, dtype, batch) matching filters."""
        q = ("SELECT model, device, runtime, dtype, batch, resolution, median_s, p90_s, min_s,"
             " runs, env FROM measurements WHERE 1=1")
        args: list = []
        for col, val in (("device", device), ("runtime", runtime), ("dtype", dtype),
                         ("batch", batch)):
            if val is not None:
                q += f" AND {col}=?"
                args.append(val)
        out = {}
        for r in self.db.execute(q + " ORDER BY id", args):
            keys = ("model", "device", "runtime", "dtype", "batch", "resolution", "median_s",
                    "p90_s", "min_s", "runs", "env")
            d = dict(zip(keys, r))
            d["env"] = json.loads(d["env"])
            out[(d["model"], d["device"], d["runtime"], d["dtype"], d["batch"])] = d
        return out
