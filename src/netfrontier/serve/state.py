"""What the server keeps in memory: the zoo's entries and their captured graphs, from the store.

Graphs are read from the store once and kept (each OpGraph caches its LayerTable), so a what-if
recosts the whole zoo with array arithmetic only: no capture, no PyTorch, no SQLite on the way.
Only models with a stored graph are served; batch sizes are those the store holds graphs for.
"""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from netfrontier.cost.analytical import DEFAULT_MODEL, check_bits
from netfrontier.cost.base import BOUNDS, CostOptions, CostTable
from netfrontier.errors import OptionError, StoreError, UnknownModelError, suggest
from netfrontier.graph.types import OpGraph
from netfrontier.hardware.spec import HardwareSpec
from netfrontier.models.base import ModelEntry
from netfrontier.store import Store
from netfrontier.zoo import _totals_row, cached_zoo_entries

_FAMILY = re.compile(r"[a-z]+(?:_resnet)?")
_CACHE_SIZE = 48  # whole-zoo cost results kept (a result is ~100 KB)


def family(arch: str) -> str:
    """A model family from an architecture name: its leading letters ('resnet50' -> 'resnet',
    'mobilenet_v3_small' -> 'mobilenet', 'regnet_y_8gf' -> 'regnet'); 'wide_resnet50_2' ->
    'wide_resnet'."""
    m = _FAMILY.match(arch.lower())
    return m.group(0) if m else arch


def dominant_bound(table: CostTable) -> tuple[str, float]:
    """The bound that takes the largest share of the latency, and that share."""
    shares = dict.fromkeys(BOUNDS, 0.0)
    for bound, seconds in zip(table.columns["bound"].tolist(),
                              table.columns["latency_s"].tolist()):
        shares[bound] += seconds
    total = sum(shares.values())
    best = max(shares, key=shares.get)
    return (best, shares[best] / total) if total > 0 else ("overhead", 0.0)


class ZooState:
    """The served zoo: entries with a stored graph, per batch, and a cache of cost results."""

    def __init__(self, store_path: Path):
        path = Path(store_path)
        if not path.is_file():
            raise StoreError(f"store '{path}' does not exist; run 'netfrontier zoo' first to "
                             "capture the zoo into it")
        self.store_path = path
        store = Store(path)
        try:
            keys = {k for (k,) in store.db.execute("SELECT key FROM graphs")}
            if not keys:
                raise StoreError(f"store '{path}' holds no captured graphs; run 'netfrontier "
                                 "zoo' first (a few minutes for the whole zoo)")
            entries = cached_zoo_entries(store)
        finally:
            store.close()
        stored_batches = sorted({int(k.split("|")[2]) for k in keys
                                 if k.count("|") > 2 and k.split("|")[2].isdigit()})
        self.entries: dict[str, ModelEntry] = {}
        self.by_batch: dict[int, list[str]] = {}
        for b in stored_batches:
            names = [e.name for e in entries
                     if Store.graph_key(e.name, e.resolution, b) in keys]
            if names:
                self.by_batch[b] = names
                self.entries.update({e.name: e for e in entries if e.name in set(names)})
        if not self.by_batch:
            raise StoreError(f"store '{path}' holds no graph of a zoo model for this version of "
                             "netfrontier and PyTorch; run 'netfrontier zoo' first")
        self.families = sorted({family(e.arch) for e in self.entries.values()})
        self._graphs: dict[tuple[str, int], OpGraph] = {}
        self._costs: OrderedDict = OrderedDict()
        self.lock = threading.RLock()  # one recost at a time (numpy work holds the GIL)

    @property
    def batches(self) -> list[int]:
        return sorted(self.by_batch)

    def load(self, batch: int | None = None, fusion: str = "full") -> int:
        """Read every graph of `batch` (default: the smallest) and build its layer table."""
        batch = batch or self.batches[0]
        names = self.by_batch.get(batch, [])
        for name in names:
            self.graph(name, batch).layer_table(fusion)
        return len(names)

    # look-ups (every name a request gives is checked here, never used as a path) ----------------
    def entry(self, name: str) -> ModelEntry:
        if name in self.entries:
            return self.entries[name]
        arch = [n for n, e in self.entries.items() if e.arch == name]
        default = [n for n in arch if self.entries[n].extra.get("default")]
        if len(arch) == 1 or len(default) == 1:  # 'resnet50': its default weights, as the CLI
            return self.entries[(default or arch)[0]]
        archs = sorted({e.arch for e in self.entries.values()})
        hint = suggest(name, list(self.entries) + archs) or (
            f" (it has {len(arch)} entries: {', '.join(arch)})" if arch else "")
        raise UnknownModelError(f"unknown model '{name[:80]}'{hint}: the store holds "
                                f"{len(self.entries)} zoo models")

    def check_batch(self, batch: int) -> int:
        if batch not in self.by_batch:
            have = ", ".join(map(str, self.batches))
            raise OptionError(f"batch {batch} has no captured graphs in the store (it has "
                              f"batch {have}); run 'netfrontier zoo --batch {batch}' first")
        return batch

    def graph(self, name: str, batch: int) -> OpGraph:
        """The stored graph of a known model (read once, then kept with its layer tables)."""
        e = self.entry(name)
        self.check_batch(batch)
        key = (e.name, batch)
        with self.lock:
            g = self._graphs.get(key)
            if g is None:
                store = Store(self.store_path)  # SQLite handles belong to their thread
                try:
                    g = store.get_graph(Store.graph_key(e.name, e.resolution, batch))
                finally:
                    store.close()
                if g is None:
                    raise UnknownModelError(f"model '{e.name}' has no captured graph at batch "
                                            f"{batch} in the store")
                self._graphs[key] = g
            return g

    # costing ------------------------------------------------------------------------------------
    def estimate(self, name: str, hw: HardwareSpec, wbits: int | None, abits: int | None,
                 batch: int) -> CostTable:
        return DEFAULT_MODEL.estimate(self.graph(name, batch), hw, CostOptions(wbits, abits))

    def cost_rows(self, hw: HardwareSpec, wbits: int | None = None, abits: int | None = None,
                  batch: int = 1) -> list[dict]:
        """One zoo row (zoo.CSV_COLUMNS, plus family and the dominant bound) per stored model,
        costed on `hw` from the kept graphs. Results are cached by spec digest and shared:
        callers copy before they change a row (frontier.annotate does)."""
        wbits, abits = wbits or hw.default_wbits, abits or hw.default_abits
        check_bits(hw, wbits, abits)
        self.check_batch(batch)
        key = (hw.digest, hw.name, wbits, abits, batch)
        with self.lock:
            if key in self._costs:
                self._costs.move_to_end(key)
                return self._costs[key]
            rows = []
            for name in self.by_batch[batch]:
                e = self.entries[name]
                table = self.estimate(name, hw, wbits, abits, batch)
                row = _totals_row(e, table.totals(), hw)
                row["family"] = family(e.arch)
                row["bound"], row["bound_share"] = dominant_bound(table)
                rows.append(row)
            self._costs[key] = rows
            while len(self._costs) > _CACHE_SIZE:
                self._costs.popitem(last=False)
            return rows


def finite(x) -> float | None:
    """A JSON-safe number: None for NaN and infinities."""
    x = float(x)
    return x if np.isfinite(x) else None
