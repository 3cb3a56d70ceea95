"""The cost-model contract and its one result type, CostTable."""
from __future__ import annotations

import csv
import io
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from netfrontier.graph.types import OpGraph
from netfrontier.hardware.spec import HardwareSpec

# A row's verdict: what limits it on the chip, or that it runs on the fallback host
# ("unsupported"), or that its compute could not be costed at all ("unknown", a lower bound).
BOUNDS = ("compute", "memory", "overhead", "unsupported", "unknown")
ROW_COLUMNS = ("name", "op", "macs", "weight_bytes", "dram_bytes", "compute_s", "memory_s",
               "latency_s", "energy_j", "utilization", "array_utilization", "bound", "wbits",
               "on_host", "cost_unknown")


@dataclass(frozen=True)
class CostOptions:
    """What to cost: bit depths (None = the preset's defaults), per-module weight bits, precision."""

    wbits: int | None = None
    abits: int | None = None
    precision: str | None = None
    layer_wbits: tuple[tuple[str, int], ...] = ()  # (module path prefix, bits) overrides
    # (module path prefix, fraction of weights nonzero): unstructured sparsity (lottery tickets)
    layer_density: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class CostTable:
    """Per fused layer costs and the totals, for one (graph, hardware, options) triple.

    Columns are numpy arrays in `columns` (see ROW_COLUMNS). Totals are for one batch of
    `batch` images; `per_inference` divides them by the batch.
    """

    model: str
    hardware: str
    batch: int
    resolution: int
    wbits: int
    abits: int
    precision: str
    macs: int
    params: int
    columns: dict = field(repr=False)
    graph_digest: str = ""
    spec_digest: str = ""

    @property
    def latency_s(self) -> float:
        return float(self.columns["latency_s"].sum())

    @property
    def dram_bytes(self) -> float:
        return float(self.columns["dram_bytes"].sum())

    @property
    def energy_j(self) -> float:
        return float(self.columns["energy_j"].sum())

    @property
    def unsupported_ops(self) -> list[str]:
        """Op labels of the rows that run on the fallback host."""
        return [self.columns["op"][i] for i in np.nonzero(self.columns["on_host"])[0]]

    @property
    def unknown_ops(self) -> list[str]:
        """Operators whose compute could not be costed (their rows are lower bounds)."""
        out = []
        for i in np.nonzero(self.columns["cost_unknown"])[0]:
            out += [p.split(":", 1)[1] for p in self.columns["op"][i].split("+")
                    if p.startswith("unknown:")]
        return out

    def achieved_ops_per_s(self) -> float:
        return 2.0 * self.macs / self.latency_s if self.latency_s > 0 else 0.0

    def array_utilization(self) -> float:
        """MAC-weighted occupancy of the array while it computes (mapping losses only)."""
        c = self.columns
        busy = np.where(c["array_utilization"] > 0, c["macs"] / np.maximum(
            c["array_utilization"], 1e-30), 0.0)
        return float(c["macs"].sum() / busy.sum()) if busy.sum() > 0 else 0.0

    def totals(self) -> dict:
        """The headline figures, JSON-ready."""
        bound = self.columns["bound"]
        return {
            "model": self.model, "hardware": self.hardware, "batch": self.batch,
            "resolution": self.resolution, "wbits": self.wbits, "abits": self.abits,
            "precision": self.precision, "macs": self.macs, "params": self.params,
            "latency_s": self.latency_s, "dram_bytes": self.dram_bytes,
            "energy_j": self.energy_j, "achieved_ops_per_s": self.achieved_ops_per_s(),
            "array_utilization": self.array_utilization(),
            "layers": int(len(bound)),
            "unsupported_layers": int(self.columns["on_host"].sum()),
            "unsupported_ops": sorted(set(self.unsupported_ops)),
            "unknown_layers": int(self.columns["cost_unknown"].sum()),
            "unknown_ops": sorted(set(self.unknown_ops)),
            "lower_bound": bool(self.columns["cost_unknown"].any()),
            "bound_counts": {b: int((bound == b).sum()) for b in BOUNDS},
        }

    def rows(self) -> list[dict]:
        cols = self.columns
        out = []
        for i in range(len(cols["name"])):
            row = {}
            for k in ROW_COLUMNS:
                v = cols[k][i]
                row[k] = v.item() if isinstance(v, np.generic) else v
            out.append(row)
        return out

    def to_json(self, peak_ops_per_s: float | None = None) -> str:
        d = self.totals()
        if peak_ops_per_s:
            d["peak_ops_per_s"] = peak_ops_per_s
        d["layers"] = [{**r, "op": r["op"]} for r in self.rows()]
        return json.dumps(d, indent=1)

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(ROW_COLUMNS))
        w.writeheader()
        w.writerows(self.rows())
        return buf.getvalue()


class CostModel(ABC):
    """Maps (OpGraph, HardwareSpec, CostOptions) to a CostTable.

    Contract: `estimate` is pure (same inputs, same table), never mutates its arguments, returns
    one row per fused layer with a `bound` in BOUNDS, costs ops the hardware cannot run on its
    fallback host (bound 'unsupported', `on_host`) instead of failing, and flags rows whose
    compute nobody could cost (bound 'unknown', `cost_unknown`): never a silent zero. It must be cheap enough (about a
    millisecond for a captured graph) for sweeps over many presets.
    """

    @abstractmethod
    def estimate(self, graph: OpGraph, hw: HardwareSpec,
                 options: CostOptions = CostOptions()) -> CostTable: ...
