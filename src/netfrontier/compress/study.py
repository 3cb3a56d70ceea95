"""A quantization study of one network: accuracy of each variant and what it saves per preset.

For a network with offline weights: FP32, PTQ at each weight depth, optionally QAT (each depth
below 8) and a mixed-precision allocation, all measured on the same held-out images (the
odd-numbered half of the set; calibration, QAT and the mixed-precision search use the
even-numbered half, the search choosing on the tune images past the calibration ones). For any
network: modelled latency, DRAM bytes and energy per inference of each variant on each preset,
and the improvement over the uniform 8-bit model (×).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from netfrontier.compress.config import QuantConfig, check_bits
from netfrontier.compress.qat import QATConfig
from netfrontier.errors import OptionError, UnknownModelError

METRICS = {"latency": "latency_s", "dram": "dram_bytes", "energy": "energy_j"}


@dataclass
class StudyOptions:
    wbits: tuple[int, ...] = (8, 6, 4)
    abits: int = 8
    hardware: tuple[str, ...] = ("img-series4-1core", "img-series4-8core")
    data: str | None = None
    limit: int | None = None
    calib_images: int = 128
    rounding: str = "nearest"  # of PTQ weights below 8 bits: "nearest" | "gptq" | "gptq-float"
    qat: bool = False
    qat_config: QATConfig = field(default_factory=QATConfig)
    qat_wbits: tuple[int, ...] | None = None  # None: every depth in wbits below 8
    qat_lrs: tuple[float, ...] = ()  # several: chosen on a fifth of the tune half (see below)
    qat_select_epochs: int | None = None  # epochs of each selection trial (None: as the final)
    mixed: bool = False
    budget_top1_drop: float = 1.0
    objective: str = "latency"
    mixed_select_images: int | None = None  # None: every tune image not used for calibration
    export_onnx: str | None = None  # directory for QDQ ONNX files
    threads: int | None = None
    cost_only: bool = False

    def __post_init__(self):
        if not self.wbits:
            raise OptionError("--wbits needs at least one bit depth")
        for b in self.wbits:
            check_bits("--wbits", b)
        check_bits("--abits", self.abits)
        if self.mixed and self.budget_top1_drop < 0:
            raise OptionError(f"--budget-top1-drop must be zero or more, got "
                              f"{self.budget_top1_drop}")
        if self.objective not in METRICS:
            raise OptionError(f"--objective must be one of {', '.join(METRICS)}, "
                              f"got '{self.objective}'")
        from netfrontier.compress.config import ROUNDINGS

        if self.rounding not in ROUNDINGS:
            raise OptionError(f"--rounding must be one of {', '.join(ROUNDINGS)}, "
                              f"got '{self.rounding}'")
        if self.calib_images < 1:
            raise OptionError(f"calibration needs at least one image, got {self.calib_images}")


def _first_last(table) -> list[str]:
    names = [r["name"] for r in table.rows() if r["macs"] > 0]
    return [names[0], names[-1]] if names else []


def _cost_rows(graph, specs, wbits: int, abits: int, layer_wbits: dict) -> dict:
    from netfrontier.cost.analytical import estimate

    out = {}
    for hw in specs:
        t = estimate(graph, hw, wbits=wbits, abits=abits, layer_wbits=layer_wbits)
        out[hw.name] = {"latency_s": t.latency_s, "dram_bytes": t.dram_bytes,
                        "energy_j": t.energy_j, "precision": t.precision}
    return out


def run_study(model_name: str, opts: StudyOptions,
              progress: Callable[[str], None] | None = None) -> list[dict]:
    """One row per variant of `model_name` (see module doc)."""
    import torch

    from netfrontier.cost.analytical import check_bits as hw_check_bits
    from netfrontier.cost.analytical import estimate
    from netfrontier.hardware.registry import get_hardware
    from netfrontier.models.pretrained import load_pretrained
    from netfrontier.models.registry import capture, resolve

    say = progress or (lambda s: None)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    specs = [get_hardware(h) for h in opts.hardware]
    for hw in specs:
        for b in opts.wbits:
            hw_check_bits(hw, b, opts.abits)
    pre = None
    if not opts.cost_only:
        try:
            pre = load_pretrained(model_name)
        except UnknownModelError as exc:
            _, entry = resolve(model_name)  # unknown names fail here, with suggestions
            say(f"{model_name}: cost only ({exc})")
            pre = None
    if pre is None:
        _, entry = resolve(model_name)
        graph = capture(model_name)
        arch = entry.arch
    else:
        entry = pre.entry
        arch = entry.arch if entry is not None else model_name
        if pre.cost_model_name:
            graph = capture(pre.cost_model_name, resolution=pre.resolution)
        else:
            from netfrontier.graph.torch_capture import capture_module

            graph = capture_module(pre.model, (1, 3, pre.resolution, pre.resolution),
                                   model_name=model_name)
    base_table = estimate(graph, specs[0], wbits=8, abits=opts.abits)
    fl = _first_last(base_table)

    def row(variant, method, wbits, layer_wbits, acc=None, fp=None, extra=None):
        from netfrontier.measure.accuracy import paired_difference

        r = {"model": model_name, "arch": arch, "variant": variant, "method": method,
             "wbits": wbits, "abits": opts.abits, "resolution": graph.resolution,
             "macs": graph.table.macs.sum().item(), "params": graph.params}
        if layer_wbits:
            counts: dict[int, int] = {}
            for b in layer_wbits.values():
                counts[b] = counts.get(b, 0) + 1
            r["layers_per_bits"] = {str(k): v for k, v in sorted(counts.items())}
        if acc is not None:
            r.update(top1=acc.top1, top1_se=acc.top1_se, top5=acc.top5, top5_se=acc.top5_se,
                     images=acc.n, dataset=acc.dataset)
            if fp is not None and acc is not fp:
                d, se = paired_difference(fp, acc)
                r.update(top1_drop=round(-d, 9) + 0.0, top1_drop_se=se)
            elif fp is not None:
                r.update(top1_drop=0.0, top1_drop_se=0.0)
        else:
            r.update(top1=None, top1_drop=None)
        if wbits is not None:
            r["cost"] = _cost_rows(graph, specs, wbits if isinstance(wbits, int) else 8,
                                   opts.abits, layer_wbits or {})
        r.update(extra or {})
        return r

    rows = []
    if pre is None:
        for b in opts.wbits:
            lw = {p: max(8, b) for p in fl}
            rows.append(row(f"W{b}A{opts.abits}", "cost only", b, lw,
                            extra={"note": "no offline weights: modelled cost only; first and "
                                           "last layers at 8 bits"}))
        return _relative(rows, opts)

    from netfrontier.compress.ptq import layer_bits, quantize
    from netfrontier.measure.accuracy import evaluate, load_images

    t0 = time.time()
    data = load_images(opts.data, pre.preprocess, limit=opts.limit)
    if len(data) < 4:
        raise OptionError(f"the data set has {len(data)} images; a study needs at least 4")
    tune, test = data.split()
    ncal = max(1, min(opts.calib_images, len(tune)))
    calib = list(tune.subset(range(ncal)).batches(32))
    say(f"{model_name}: {len(data)} images decoded in {time.time() - t0:.0f} s "
        f"({len(tune)} tune, {len(test)} held-out)")
    fp = evaluate(pre.model, test)
    say(f"{model_name} FP32: top-1 {fp.top1:.2f} ± {fp.top1_se:.2f} on {test.name}")
    rows.append(row("FP32", "float", None, None, fp, fp))
    ptq_models = {}
    for b in opts.wbits:
        # bias correction after GPTQ would compare the rounded weights with themselves
        cfg = QuantConfig(wbits=b, abits=opts.abits,
                          bias_correction=b < 8 and opts.rounding == "nearest",
                          rounding=opts.rounding if b < 8 else "nearest")
        t = time.time()
        q = quantize(pre.model, cfg, calib)
        acc = evaluate(q, test)
        ptq_models[b] = q
        say(f"{model_name} PTQ {cfg.tag}: top-1 {acc.top1:.2f} ({time.time() - t:.0f} s)")
        method = "PTQ" + _ROUNDING_LABEL.get(cfg.rounding, "") + \
            (" + bias correction" if cfg.bias_correction else "")
        rows.append(row(cfg.tag, method, b, layer_bits(q), acc, fp))
        _maybe_export(opts, model_name, f"ptq_{cfg.tag}", q, test, rows[-1])
    if opts.qat:
        from netfrontier.compress.qat import qat

        for b in opts.wbits:
            if b >= 8 or (opts.qat_wbits is not None and b not in opts.qat_wbits):
                continue
            t = time.time()
            cfg, selection = _select_qat_lr(opts, ptq_models[b], pre.model, tune, say)
            qq = qat(ptq_models[b], pre.model, tune, cfg,
                     progress=lambda log: say(f"  QAT W{b} epoch {log['epoch']}: "
                                              f"KD loss {log['loss']:.4f} ({log['seconds']:.0f} s)"))
            acc = evaluate(qq, test)
            say(f"{model_name} QAT W{b}A{opts.abits}: top-1 {acc.top1:.2f} "
                f"({time.time() - t:.0f} s)")
            method = "QAT (LSQ + distillation" + (", features" if cfg.feature_weight else "") + \
                (", from GPTQ)" if opts.rounding.startswith("gptq") else ")")
            rows.append(row(f"W{b}A{opts.abits}", method, b, layer_bits(qq),
                            acc, fp, extra={"qat": {
                                "epochs": cfg.epochs, "train_images": len(tune),
                                "lr": cfg.lr, "scale_lr": cfg.scale_lr,
                                "weight_scale_lr": cfg.weight_scale_lr, "augment": cfg.augment,
                                "feature_weight": cfg.feature_weight,
                                "init": f"PTQ, {opts.rounding} rounding",
                                "batch_size": cfg.batch_size, "device": cfg.device,
                                "lr_selection": selection,
                                "log": qq.qat_log, "seconds": time.time() - t}}))
            _maybe_export(opts, model_name, f"qat_W{b}A{opts.abits}", qq, test, rows[-1])
    if opts.mixed:
        from netfrontier.compress.mixed import search

        t = time.time()
        base_q = quantize(pre.model, QuantConfig(wbits=8, abits=opts.abits), calib)
        low = tuple(b for b in opts.wbits if b < 8) or (6, 4)
        # choose on tune images the calibration and bias correction never saw
        select = tune.subset(range(ncal, len(tune))) if len(tune) - ncal >= 8 else tune
        qm, res = search(pre.model, base_q, select, calib[:2], graph, specs[0],
                         budget_top1_drop=opts.budget_top1_drop, objective=opts.objective,
                         bits=low, select_images=opts.mixed_select_images,
                         progress=lambda s: say(f"  mixed: {s}") if "allocation" in s else None)
        acc = evaluate(qm, test)
        say(f"{model_name} mixed: top-1 {acc.top1:.2f} ({time.time() - t:.0f} s)")
        rows.append(row(f"mixed ≤{opts.budget_top1_drop:g}pt", "PTQ mixed precision "
                        f"({opts.objective} on {specs[0].name})", "mixed", res.layer_wbits, acc,
                        fp, extra={"mixed": res.summary(), "layer_wbits": res.layer_wbits}))
        _maybe_export(opts, model_name, "mixed", qm, test, rows[-1])
    return _relative(rows, opts)


_ROUNDING_LABEL = {"gptq": " + GPTQ rounding",
                   "gptq-float": " + GPTQ rounding toward the float outputs"}


def _select_qat_lr(opts: StudyOptions, qmodel, teacher, tune, say):
    """The QAT config to train with, and how its learning rate was chosen.

    With several `qat_lrs`, each is trained (for `qat_select_epochs`) on four fifths of the tune
    half and scored on the remaining fifth (top-1 against the FP32 teacher's on the same
    images): the held-out half never takes part in the choice. The winner is then retrained on
    the whole tune half for the full epochs.
    """
    from dataclasses import replace

    from netfrontier.compress.qat import qat
    from netfrontier.measure.accuracy import evaluate, paired_difference

    cfg = opts.qat_config
    if len(opts.qat_lrs) <= 1:
        return (replace(cfg, lr=opts.qat_lrs[0]) if opts.qat_lrs else cfg), None
    val, train = tune.split(5)
    ref = evaluate(teacher, val)
    scores = []
    for lr in opts.qat_lrs:
        trial = qat(qmodel, teacher, train,
                    replace(cfg, lr=lr, epochs=opts.qat_select_epochs or cfg.epochs))
        acc = evaluate(trial, val)
        drop = -paired_difference(ref, acc)[0]
        say(f"  QAT lr {lr:g}: top-1 {acc.top1:.1f} on {len(val)} selection images "
            f"(drop {drop:.1f})")
        scores.append({"lr": lr, "top1": acc.top1, "drop": drop})
    best = max(scores, key=lambda r: (r["top1"], -r["lr"]))
    return replace(cfg, lr=best["lr"]), {
        "rule": f"best top-1 on {len(val)} images of the tune half after "
                f"{opts.qat_select_epochs or cfg.epochs} epochs on the other {len(train)}; then "
                f"retrained on all {len(tune)}", "trials": scores}


def _maybe_export(opts, model_name, tag, qmodel, test, row) -> None:
    if not opts.export_onnx:
        return
    from pathlib import Path

    from netfrontier.compress.onnx_export import export_qdq, onnx_parity

    x = next(test.batches(8))
    path = Path(opts.export_onnx) / f"{model_name}_{tag}.onnx"
    if max(q.wbits for q in qmodel.quant_layers) > 8 or opts.abits != 8:
        row["onnx"] = {"skipped": "QDQ export holds 8-bit activations and ≤8-bit weights"}
        return
    export_qdq(qmodel, path, x[:1])
    row["onnx"] = {"file": path.name, **onnx_parity(qmodel, path, x)}


def _relative(rows: list[dict], opts: StudyOptions | None = None) -> list[dict]:
    """Add improvement_<metric> (× over the uniform 8-bit variant) per preset."""
    return relative_improvements(rows)


def relative_improvements(rows: list[dict]) -> list[dict]:
    """Set improvement_<metric> on every costed row: the cost of the same model's uniform
    8-bit variant divided by the row's (None when the model has no 8-bit row)."""
    by_model: dict[str, list[dict]] = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r)
    for group in by_model.values():
        _relative_one(group)
    return rows


def _relative_one(rows: list[dict]) -> None:
    base = next((r for r in rows if r.get("wbits") == 8 and r.get("cost")), None)
    for r in rows:
        if not r.get("cost"):
            continue
        for hw, c in r["cost"].items():
            for m, col in METRICS.items():
                c[f"improvement_{m}"] = (base["cost"][hw][col] / c[col]
                                         if base and c[col] > 0 else None)
