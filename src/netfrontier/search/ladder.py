"""The evaluation ladder: cost every candidate, measure only the feasible, test once at the end.

Rungs, cheapest first:

1. **cost** (`Evaluator.cost`): the candidate's shapes (meta device) captured and costed with
   the analytical model on the chip at its bits: latency, DRAM traffic, energy, parameters,
   peak activation memory. Milliseconds to a second; every candidate. A candidate that breaks
   a cost constraint is rejected here, before anything is built or trained.
2. **score** (`Evaluator.measure`): the real network is built (inherited weights, or trained
   from scratch) and its top-1 measured on the *select* images: the search objective.
3. **recovery** (optional, `recovery_epochs`): distillation from the parent on the *tune*
   images, scored on the select images after each epoch (the fidelity: successive halving
   stops the unpromising, see run.py). Used only where a check has shown it helps.
4. **final** (`Evaluator.final`): the Pareto set and every baseline, once, on the *test*
   images, weights and activations quantized (PTQ at the candidate's bits, calibrated on tune
   images), as a paired difference against the parent at its native resolution in float.

The ImageNet split (`split_indices`): image i of the labelled folder goes to tune when
i % 3 == 0, select when i % 3 == 1, test when i % 3 == 2 (imagenet-sample: 334 / 333 / 333,
each a third of the classes, one image per class). Fashion-MNIST: the first `train_images`
training images train, the last 10,000 training images select, the 10,000 test images test.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from netfrontier.errors import OptionError
from netfrontier.search.space import Candidate, SearchSpace

SPLITS = ("tune", "select", "test")
SCRATCH_DATASETS = ("fashion-mnist", "digits")
MEANS_IMAGES = 64  # tune images whose activations give the folded means
CALIB_IMAGES = 64  # tune images for PTQ calibration


class HalvingStop(Exception):
    """Successive halving: this candidate stops at the fidelity it reached."""


def split_indices(n: int) -> dict[str, np.ndarray]:
    i = np.arange(n)
    return {"tune": i[i % 3 == 0], "select": i[i % 3 == 1], "test": i[i % 3 == 2]}


@dataclass(frozen=True)
class Constraints:
    max_latency_ms: float | None = None
    max_params: float | None = None
    max_activation_mb: float | None = None
    min_top1: float | None = None

    KEYS = ("max_latency_ms", "max_params", "max_activation_mb", "min_top1")

    def cost_violations(self, cost: dict) -> dict[str, float]:
        """Constraint name → amount over (> 0 violates), for the cost constraints."""
        out = {}
        if self.max_latency_ms is not None:
            out["max_latency_ms"] = cost["latency_ms"] - self.max_latency_ms
        if self.max_params is not None:
            out["max_params"] = cost["params"] - self.max_params
        if self.max_activation_mb is not None:
            out["max_activation_mb"] = cost["activation_mb"] - self.max_activation_mb
        return out

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.KEYS if getattr(self, k) is not None}


def parse_constraints(text: str | None, **flags) -> Constraints:
    """'max_latency_ms=2,min_top1=70' (dashes or underscores) plus the individual flags."""
    vals = {k: v for k, v in flags.items() if v is not None}
    for part in filter(None, (s.strip() for s in (text or "").split(","))):
        key, sep, val = part.partition("=")
        key = key.strip().replace("-", "_").lstrip("_")
        if not sep or key not in Constraints.KEYS:
            raise OptionError(f"unknown constraint '{part}' (use "
                              f"{', '.join(k + '=VALUE' for k in Constraints.KEYS)})")
        try:
            v = float(val)
        except ValueError:
            raise OptionError(f"constraint {key}: '{val}' is not a number") from None
        vals[key] = v
    for k, v in vals.items():
        if not math.isfinite(v) or (v <= 0 and k != "min_top1") or not (k != "min_top1"
                                                                         or 0 <= v <= 100):
            raise OptionError(f"constraint {k} = {v:g} is out of range "
                              f"({'0-100' if k == 'min_top1' else 'positive'})")
    return Constraints(**vals)


def _cost_row(graph, table, abits: int) -> dict:
    t = table.totals()
    lt = graph.layer_table()
    peak = float(lt.peak_live.max()) if len(lt.peak_live) else 0.0
    return {"latency_ms": t["latency_s"] * 1e3, "dram_mb": t["dram_bytes"] / 1e6,
            "energy_mj": t["energy_j"] * 1e3, "params": float(graph.params),
            "macs": float(graph.macs), "activation_mb": peak * abits / 8 / 1e6,
            "unsupported_layers": t["unsupported_layers"]}


@dataclass
class Evaluator:
    """Everything one process needs to evaluate candidates of one space on one chip.

    `data`: an image folder (ImageNet track) or a from-scratch data set name."""

    space: SearchSpace
    hw: object
    data: str
    limit: int | None = None
    threads: int | None = None
    cache_dir: Path | None = None
    recovery_epochs: int = 0
    _costs: dict = field(default_factory=dict)
    _images: dict = field(default_factory=dict)
    _scratch: tuple | None = None
    _parent_acc: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.threads:
            torch.set_num_threads(self.threads)
        scratch = self.data in SCRATCH_DATASETS
        if scratch != (self.space.family == "convnet"):
            raise OptionError(f"--data {self.data}: the {self.space.family} space needs "
                              + ("ImageNet images (a labelled folder)" if not scratch
                                 else "a from-scratch data set (fashion-mnist or digits)"))
        if not scratch and not Path(self.data).is_dir():
            raise OptionError(f"--data '{self.data}' is not a directory of labelled images")

    # -- rung 1: cost -----------------------------------------------------------------------
    def cost(self, c: Candidate, hw=None) -> dict:
        from netfrontier.cost.analytical import estimate
        from netfrontier.search.build import layer_wbits

        hw = hw or self.hw
        key = (c.id, hw.name, hw.digest)
        if key not in self._costs:
            graph = self._graph(c)
            table = estimate(graph, hw, wbits=8 if 8 in hw.weight_bits else None,
                             abits=self.space.abits, layer_wbits=layer_wbits(c) or None)
            self._costs[key] = _cost_row(graph, table, self.space.abits)
        return self._costs[key]

    def _graph(self, c: Candidate):
        from netfrontier.graph.torch_capture import capture_module
        from netfrontier.search.build import input_shape, shape_model

        g = self._costs.get(("graph", c.id))
        if g is None:
            g = capture_module(shape_model(c, self.space.quantum),
                               input_shape(c, self.space.deploy_resolution), model_name=c.id)
            self._costs[("graph", c.id)] = g
        return g

    # -- data -----------------------------------------------------------------------------
    def images(self, resolution: int, split: str):
        """The labelled images of one split at one resolution (decoded once, cached)."""
        from netfrontier.measure.accuracy import Preprocess, load_images
        from netfrontier.models.efficientnet_lite import MEAN, STD

        if resolution not in self._images:
            path = None
            if self.cache_dir is not None:
                path = Path(self.cache_dir) / f"images-{resolution}-{self.limit or 'all'}.pt"
            data = None
            if path is not None and path.is_file():
                try:
                    d = torch.load(path, weights_only=False)
                    if d.get("source") == str(Path(self.data).resolve()):
                        data = d["data"]
                except Exception:  # a torn cache file: decode again
                    data = None
            if data is None:
                data = load_images(self.data, Preprocess.for_resolution(resolution, MEAN, STD),
                                   limit=self.limit)
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(f".{os.getpid()}.tmp")
                    torch.save({"source": str(Path(self.data).resolve()), "data": data}, tmp)
                    tmp.replace(path)
            if len(data) < 3:
                raise OptionError(f"--data {self.data} has {len(data)} images; the three-way "
                                  "split needs at least 3")
            idx = split_indices(len(data))
            self._images[resolution] = {s: data.subset(idx[s], f"{data.name} [{s}]")
                                        for s in SPLITS}
        return self._images[resolution][split]

    def scratch(self):
        """(train, select, test) tensors of the from-scratch data set."""
        if self._scratch is None:
            from netfrontier.compress.lottery import Split, load_dataset

            train, test = load_dataset(self.data)
            n_sel = min(10000, len(train.y) // 5)
            n_tr = min(self.space.train_images, len(train.y) - n_sel)
            if self.limit:
                n_tr = min(n_tr, self.limit)
            sel = Split(train.x[-n_sel:], train.y[-n_sel:])
            self._scratch = (Split(train.x[:n_tr], train.y[:n_tr]), sel, test)
        return self._scratch

    # -- measurement cache: the score does not depend on the chip ---------------------------
    def _mpath(self, c: Candidate, recovery: int):
        if self.cache_dir is None:
            return None
        return Path(self.cache_dir) / "measured" / f"{c.id}-r{recovery}-{self.limit or 'all'}.json"

    def measured(self, c: Candidate, recovery: int = 0) -> dict | None:
        """A select-image score this candidate already has (another study, same images)."""
        import json

        p = self._mpath(c, recovery)
        if p is not None and p.is_file():
            d = json.loads(p.read_text())
            if d.get("data") == str(self.data):
                return d
        return None

    def remember(self, c: Candidate, m: dict, recovery: int = 0) -> None:
        import json

        from netfrontier.report import write_atomic

        p = self._mpath(c, recovery)
        if p is not None:
            write_atomic(p, json.dumps({**m, "data": str(self.data)}))

    # -- rung 2 (and 3): measured score ----------------------------------------------------
    def build(self, c: Candidate):
        from netfrontier.search.build import build_lite

        tune = self.images(c.p["resolution"], "tune")
        n = min(MEANS_IMAGES, len(tune))
        return build_lite(c, self.space.quantum,
                          means_from=list(tune.subset(range(n)).batches(32)))

    def measure(self, c: Candidate, report=None) -> dict:
        """Top-1 on the select images; `report(step, top1)` after each fidelity step (it may
        raise to stop the candidate: successive halving)."""
        t0 = time.time()
        if c.family == "convnet":
            return self._measure_scratch(c, report, t0)
        from netfrontier.measure.accuracy import evaluate

        model = self.build(c).to(memory_format=torch.channels_last)
        sel = self.images(c.p["resolution"], "select")
        acc = evaluate(model, sel)
        steps = [{"epoch": 0, "top1": acc.top1, "seconds": time.time() - t0}]
        stopped = False
        if report and self.recovery_epochs:
            try:
                report(0, acc.top1)
            except HalvingStop:
                stopped = True
        if self.recovery_epochs and not stopped:
            acc = self._recover(c, model, sel, steps, report, t0) or acc
        return {"top1": acc.top1, "top1_se": acc.top1_se, "images": acc.n,
                "correct": "".join("1" if v else "0" for v in acc.correct1),
                "fidelity": len(steps) - 1, "steps": steps, "seconds": time.time() - t0}

    def _recover(self, c, model, sel, steps, report, t0):
        from netfrontier.compress.distill import distill
        from netfrontier.measure.accuracy import evaluate
        from netfrontier.search.build import load_parent

        teacher = load_parent(c.p["parent"], c.p["resolution"])
        tune = self.images(c.p["resolution"], "tune")
        params = [p for p in model.parameters()]
        for p in params:
            p.requires_grad_(True)
        best = None

        def on_epoch(m, epoch):
            nonlocal best
            a = evaluate(m, sel)
            steps.append({"epoch": epoch, "top1": a.top1, "seconds": time.time() - t0})
            best = a
            if report and epoch < self.recovery_epochs:
                report(epoch, a.top1)
            return {"select_top1": a.top1}

        try:
            distill(model, teacher, tune, [{"params": params, "lr": 1e-4}],
                    epochs=self.recovery_epochs, batch_size=16, augment="crop",
                    on_epoch=on_epoch)
        except HalvingStop:
            pass
        for p in params:
            p.requires_grad_(False)
        return best

    def _measure_scratch(self, c: Candidate, report, t0) -> dict:
        from netfrontier.search.build import build_convnet

        train, sel, _ = self.scratch()
        seed = int(c.id.split("-")[1][:8], 16) % (2 ** 31)
        model = build_convnet(c, seed).to(memory_format=torch.channels_last)
        steps = []
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        n = len(train.y)
        epochs = self.space.epochs
        total = epochs * math.ceil(n / 128)
        step = 0
        acc = None
        for epoch in range(1, epochs + 1):
            model.train()
            perm = torch.randperm(n, generator=gen)
            for s in range(0, n, 128):
                idx = perm[s:s + 128]
                for g in opt.param_groups:
                    g["lr"] = 2e-3 * 0.5 * (1 + math.cos(math.pi * step / total))
                loss = torch.nn.functional.cross_entropy(model(train.x[idx]), train.y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
            acc = scratch_accuracy(model, sel)
            steps.append({"epoch": epoch, "top1": acc[0], "seconds": time.time() - t0})
            if report:
                try:
                    report(epoch - 1, acc[0])
                except HalvingStop:
                    break
        model = model.to(memory_format=torch.contiguous_format)
        self._last_model = model
        if self.cache_dir is not None and len(steps) == epochs:  # for the final rung, export
            path = Path(self.cache_dir) / "models" / f"{c.id}.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            torch.save(model.state_dict(), tmp)
            tmp.replace(path)
        return {"top1": acc[0], "top1_se": acc[1], "images": len(sel.y), "correct": acc[2],
                "fidelity": len(steps), "steps": steps, "seconds": time.time() - t0}

    # -- rung 4: final, on test images --------------------------------------------------------
    def parent_reference(self, parent: str) -> "object":
        """The parent at its native resolution, in float, on the test images (cached)."""
        from netfrontier.measure.accuracy import evaluate
        from netfrontier.models.efficientnet_lite import VARIANTS
        from netfrontier.search.build import load_parent

        if parent not in self._parent_acc:
            res = VARIANTS[parent][1]
            m = load_parent(parent, res).to(memory_format=torch.channels_last)
            self._parent_acc[parent] = evaluate(m, self.images(res, "test"))
        return self._parent_acc[parent]

    def final(self, c: Candidate, wbits: int | None = 8, model=None) -> dict:
        """Test-image top-1 of the candidate quantized at its bits (None: float), and for the
        Lite family the paired drop against the float parent at native resolution and the
        estimated ImageNet top-1 (published parent − that drop)."""
        from netfrontier.compress.config import QuantConfig
        from netfrontier.compress.ptq import quantize
        from netfrontier.measure.accuracy import evaluate, paired_difference
        from netfrontier.models.efficientnet_lite import PUBLISHED
        from netfrontier.search.build import layer_wbits

        t0 = time.time()
        if c.family == "convnet":
            train, _, test = self.scratch()
            m = model if model is not None else self._retrain(c)
            if wbits:
                calib = [train.x[:128]]
                m = quantize(m, QuantConfig(wbits=wbits, layer_wbits=layer_wbits(c),
                                            first_last_bits=8), calib)
            a = scratch_accuracy(m, test)
            return {"test_top1": a[0], "test_top1_se": a[1], "test_images": len(test.y),
                    "bits": _bits_label(c, wbits), "seconds": time.time() - t0}
        res = c.p["resolution"]
        m = model if model is not None else self.build(c)
        tune = self.images(res, "tune")
        if wbits:
            calib = list(tune.subset(range(min(CALIB_IMAGES, len(tune)))).batches(32))
            m = quantize(m, QuantConfig(wbits=wbits, layer_wbits=layer_wbits(c),
                                        first_last_bits=8,
                                        bias_correction=min(c.p[k] for k in c.p
                                                            if k.startswith("b")) < 8), calib)
        acc = evaluate(m.to(memory_format=torch.channels_last), self.images(res, "test"))
        ref = self.parent_reference(c.p["parent"])
        d, se = paired_difference(ref, acc)
        return {"test_top1": acc.top1, "test_top1_se": acc.top1_se, "test_images": acc.n,
                "parent_test_top1": ref.top1, "drop": -d, "drop_se": se,
                "estimated_top1": PUBLISHED[c.p["parent"]] + d,
                "test_correct": "".join("1" if v else "0" for v in acc.correct1),
                "bits": _bits_label(c, wbits), "seconds": time.time() - t0}

    def _retrain(self, c: Candidate):
        """The trained network of a from-scratch candidate: saved by its trial, else retrained
        with the same seed."""
        from netfrontier.search.build import build_convnet

        if self.cache_dir is not None:
            path = Path(self.cache_dir) / "models" / f"{c.id}.pt"
            if path.is_file():
                m = build_convnet(c)
                m.load_state_dict(torch.load(path, weights_only=True))
                return m.eval()
        self._measure_scratch(c, None, time.time())
        return self._last_model


def _bits_label(c: Candidate, wbits) -> str:
    if not wbits:
        return "FP32"
    bits = sorted({c.p[k] for k in c.p if k.startswith("b")} | {8})
    return "W" + "/".join(map(str, bits)) + "A8"


def scratch_accuracy(model, data) -> tuple[float, float, str]:
    """(top-1 %, its standard error, per-image correctness as a 0/1 string)."""
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(data.x[s:s + 1000]).argmax(1) for s in range(0, len(data.y),
                                                                           1000)])
    ok = (pred == data.y).numpy()
    p = float(ok.mean())
    return 100 * p, 100 * math.sqrt(p * (1 - p) / len(ok)), "".join("1" if v else "0"
                                                                   for v in ok)
