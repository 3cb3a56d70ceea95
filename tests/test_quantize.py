"""PTQ, QAT and mixed precision on small real models (fast: a few seconds in all)."""
from __future__ import annotations

import copy
import functools
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from _tiny import blob_images, randomize_bn, tiny_cnn, train_fp32
from netfrontier.compress.config import QuantConfig
from netfrontier.compress.fakequant import ActQuantizer, FakeQuantize, WeightQuantizer, qrange
from netfrontier.compress.mixed import allocation_path, search
from netfrontier.compress.ptq import (bias_correction, execution_order, fold_batchnorm, layer_bits,
                                      quantize)
from netfrontier.compress.qat import QATConfig, qat
from netfrontier.errors import InfeasibleError, OptionError
from netfrontier.measure.accuracy import evaluate

torch.set_num_threads(int(os.environ.get("NETFRONTIER_TEST_THREADS", "2")))
# The tests that train hold on every seed of 0-9, at ATen CPU capabilities default and avx512,
# with 1 and 2 threads (NETFRONTIER_TEST_SEED=k selects another seed for the whole module):
# their margins are set from that sweep, not from one lucky draw.
SEED = int(os.environ.get("NETFRONTIER_TEST_SEED", "0"))


@functools.lru_cache(maxsize=4)
def _trained(seed: int):
    torch.manual_seed(seed)
    data = blob_images(720, size=12, seed=1 + seed)
    tune, test = data.split()
    model = train_fp32(tiny_cnn(), tune, epochs=25, seed=seed)
    return model, tune, test


@pytest.fixture(scope="module")
def trained():
    return _trained(SEED)


@pytest.mark.parametrize("bad", [1, 17, 0, 3.5, True])
def test_config_rejects_bits_outside_2_16(bad):
    with pytest.raises(OptionError, match="wbits"):
        QuantConfig(wbits=bad)
    with pytest.raises(OptionError, match="abits"):
        QuantConfig(abits=bad)
    with pytest.raises(OptionError, match="layer_wbits\\['a.b'\\]"):
        QuantConfig(layer_wbits={"a.b": bad})


def test_config_bits_for_first_last_and_prefix_overrides():
    c = QuantConfig(wbits=4, layer_wbits={"blocks.1": 6, "blocks.1.conv": 5})
    assert c.bits_for("blocks.0.conv", False) == 4
    assert c.bits_for("stem", True) == 8
    assert c.bits_for("blocks.1.other", False) == 6
    assert c.bits_for("blocks.1.conv", False) == 5  # longest prefix wins
    assert c.bits_for("blocks.10.conv", False) == 4  # a prefix is a whole path component
    assert QuantConfig(wbits=4, first_last_bits=None).bits_for("stem", True) == 4


def test_weight_quantizer_levels_and_range():
    w = torch.randn(8, 4, 3, 3)
    for bits in (2, 4, 6, 8):
        q = WeightQuantizer(bits, w, per_channel=True, method="minmax")
        wq = q(w)
        lo, hi = qrange(bits, True)
        for c in range(8):
            ints = torch.round(wq[c] / q.scale[c])
            assert ints.min() >= lo and ints.max() <= hi
            assert len(torch.unique(ints)) <= hi - lo + 1
        # minmax keeps the largest weight of each channel exactly
        assert torch.allclose(wq.abs().flatten(1).amax(1), w.abs().flatten(1).amax(1), rtol=1e-5)


def test_mse_clipping_beats_minmax_at_low_bits():
    w = torch.randn(16, 64) * torch.rand(16, 1)
    w[:, 0] *= 8  # outliers
    err = {m: (WeightQuantizer(3, w, method=m)(w) - w).pow(2).sum().item() for m in ("minmax", "mse")}
    assert err["mse"] < err["minmax"]


def test_activation_calibration_covers_range_with_zero_point():
    q = ActQuantizer(8)
    x = torch.linspace(-1.0, 3.0, 1000)
    q(x)
    q.finish_calibration("minmax")
    assert q.mode == "quant"
    assert q.scale.item() == pytest.approx(4.0 / 255, rel=1e-4)
    assert (q(torch.tensor([0.0])) == 0).all()  # zero is exact
    assert (q(x) - x).abs().max() <= q.scale.item() / 2 + 1e-6


def test_lsq_passes_gradients_to_scale_and_input():
    q = FakeQuantize(4, signed=True, channels=3, axis=0)
    q.scale.data.fill_(0.1)
    q.learn = True
    q.scale.requires_grad_(True)
    x = torch.randn(3, 10, requires_grad=True)
    q(x).pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert q.scale.grad is not None and q.scale.grad.abs().sum() > 0
    # straight-through: inside the range the input gradient is that of the identity
    inside = (x.detach() / 0.1).abs() < 6.4
    assert torch.allclose(x.grad[inside], 2 * q(x).detach()[inside])


def test_fold_batchnorm_keeps_outputs():
    m = randomize_bn(tiny_cnn())
    x = torch.randn(4, 3, 12, 12)
    ref = m(x)
    f = copy.deepcopy(m)
    folded = fold_batchnorm(f, x[:1])
    assert len(folded) == 3
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in f.modules())
    assert torch.allclose(f(x), ref, atol=1e-5)


def test_execution_order_finds_first_and_last():
    order, bn_of = execution_order(tiny_cnn().eval(), torch.randn(1, 3, 12, 12))
    assert order == ["0", "3", "6", "11"]
    assert bn_of == {"1": "0", "4": "3", "7": "6"}


def test_ptq_error_grows_as_bits_shrink_and_model_is_untouched(trained):
    model, tune, test = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = next(test.batches(120))
    ref = model(x)
    calib = list(tune.batches(40))
    errs = {}
    for b in (8, 6, 4, 2):
        q = quantize(model, QuantConfig(wbits=b, first_last_bits=None), calib)
        assert set(layer_bits(q).values()) == {b}
        errs[b] = (q(x) - ref).pow(2).mean().item()
    assert errs[8] < errs[6] < errs[4] < errs[2]
    assert errs[8] < 1e-3 * ref.pow(2).mean().item()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_first_and_last_layers_stay_8_bit(trained):
    model, tune, _ = trained
    q = quantize(model, QuantConfig(wbits=4), list(tune.batches(40)))
    assert layer_bits(q) == {"0": 8, "3": 4, "6": 4, "11": 8}


def test_bias_correction_removes_mean_output_shift(trained):
    model, tune, test = trained
    calib = list(tune.batches(40))
    cfg = QuantConfig(wbits=3, first_last_bits=None)
    q = quantize(model, cfg, calib)
    qc = copy.deepcopy(q)
    bias_correction(qc, calib, cfg)
    x = next(tune.batches(120))
    ref = model(x)
    shift = (q(x) - ref).mean(0).abs().mean().item()
    shift_bc = (qc(x) - ref).mean(0).abs().mean().item()
    assert shift_bc < shift


def _teacher_kl(teacher, student, data) -> float:
    """Mean KL(teacher || student) of the softmax outputs on `data`: smooth, unlike top-1."""
    with torch.no_grad():
        x = torch.cat(list(data.batches(120)))
        pt, ps = torch.log_softmax(teacher(x), 1), torch.log_softmax(student(x), 1)
        return float((pt.exp() * (pt - ps)).sum(1).mean())


@pytest.mark.parametrize("seed", [SEED, SEED + 1, SEED + 2])
def test_qat_recovers_low_bit_accuracy(seed):
    # seeds 0-9 (two CPU capabilities): W2A4 PTQ 42-93%, QAT 93-99% (0.8-6 points below FP32,
    # 3.3+ above PTQ), teacher KL cut to 0.05-0.50 of PTQ's; asserted with about 2x margin
    model, tune, test = _trained(seed)
    fp = evaluate(model, test)
    assert fp.top1 > 90  # the tiny task is learnt
    q = quantize(model, QuantConfig(wbits=2, abits=4, first_last_bits=None),
                 list(tune.batches(40)))
    ptq = evaluate(q, test)
    torch.manual_seed(seed)
    qq = qat(q, model, tune, QATConfig(epochs=6, batch_size=20, lr=2e-3, scale_lr=2e-2))
    after = evaluate(qq, test)
    assert qq.qat_log[-1]["loss"] < qq.qat_log[0]["loss"]
    assert _teacher_kl(model, qq, test) < 0.7 * _teacher_kl(model, q, test)
    assert after.top1 > ptq.top1
    assert after.top1 >= fp.top1 - 12
    # the trained model is a fixed-scale quantized model again
    assert not any(p.requires_grad for p in qq.parameters())
    assert all(not m.learn for m in qq.modules() if isinstance(m, FakeQuantize))


def test_allocation_path_goes_from_8_bit_to_lowest():
    sens = {"a": 1.0, "b": 0.01, "c": 0.1}
    save = {"a": {6: 1.0, 4: 2.0}, "b": {6: 1.0, 4: 2.0}, "c": {6: 0.0, 4: 0.0}}
    path = allocation_path(sens, save, [6, 4], 4)
    assert path[0] == {"a": 8, "b": 8, "c": 8}
    assert path[-1]["a"] == 4 and path[-1]["b"] == 4
    assert all(a["c"] == 8 for a in path)  # no saving, never lowered
    # the least sensitive layer goes down first
    first_change = next(a for a in path[1:])
    assert first_change["b"] < 8 and first_change["a"] == 8


def test_mixed_search_respects_budget_and_cost(trained):
    from netfrontier.graph.torch_capture import capture_module
    from netfrontier.hardware.registry import get_hardware

    model, tune, test = trained
    calib = list(tune.batches(40))
    graph = capture_module(model, (1, 3, 12, 12), model_name="tiny")
    hw = get_hardware("img-series4-1core")
    base = quantize(model, QuantConfig(wbits=8), calib)
    qm, res = search(model, base, tune, calib, graph, hw, budget_top1_drop=100.0,
                     objective="dram", bits=(4,), sens_images=20)
    assert set(res.layer_wbits) == {"0", "3", "6", "11"}
    assert all(b == 4 for b in res.layer_wbits.values())  # any drop fits: cheapest allocation
    assert res.modelled_cost < res.base_cost
    with pytest.raises(OptionError, match="budget-top1-drop"):
        search(model, base, tune, calib, graph, hw, budget_top1_drop=-1.0, bits=(4,))
    # a base model that already loses more than the budget: no allocation can fit
    crushed = copy.deepcopy(base)  # predicts class 0 for everything: a sure, large drop
    with torch.no_grad():
        crushed.get_submodule("11").bias[0] += 1e4
    with pytest.raises(InfeasibleError, match="within 0.0 points"):
        search(model, crushed, tune, calib, graph, hw, budget_top1_drop=0.0, bits=(4,),
               sens_images=20)


def _cli(*args):
    """Run the console entry point in-process; (exit code, stdout, stderr)."""
    import contextlib
    import io

    from netfrontier.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["netfrontier", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        sys.argv = argv
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.mark.parametrize("args,culprit", [
    (["quantize", "resnet5O"], "resnet5O"),
    (["quantize", "resnet50", "--wbits", "8,1"], "--wbits"),
    (["quantize", "resnet50", "--abits", "17"], "--abits"),
    (["quantize", "resnet50", "--hw", "no-such-chip"], "no-such-chip"),
    (["quantize", "efficientnet_lite0", "--data", "/no/such/dir"], "/no/such/dir"),
    (["eval", "efficientnet_lite0", "--data", "/no/such/dir"], "/no/such/dir"),
    (["eval", "nosuchnet"], "nosuchnet"),
])
def test_cli_bad_input_is_one_line_exit_2(args, culprit):
    r = _cli(*args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and culprit in lines[0]


def test_cli_cost_only_report(tmp_path):
    import json

    r = _cli("quantize", "mobilenet_v2", "--wbits", "8,4", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    d = json.loads((tmp_path / "results.json").read_text())
    rows = {x["variant"]: x for x in d["rows"]}
    for hw in ("img-series4-1core", "img-series4-8core"):
        assert rows["W8A8"]["cost"][hw]["improvement_dram"] == 1.0
        assert rows["W4A8"]["cost"][hw]["improvement_dram"] > 1.2
        assert rows["W4A8"]["cost"][hw]["dram_bytes"] < rows["W8A8"]["cost"][hw]["dram_bytes"]
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6
    assert (tmp_path / "results.csv").read_text().count("\n") == 1 + 4


def test_random_resized_crop_keeps_shape_and_varies_views():
    from netfrontier.compress.qat import random_resized_crop

    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32)
    gen = torch.Generator().manual_seed(0)
    a, b = random_resized_crop(x, gen), random_resized_crop(x, gen)
    assert a.shape == x.shape and not torch.equal(a, b)
    assert a.min() >= x.min() and a.max() <= x.max()  # bilinear samples inside the image


def test_qat_with_crop_augmentation_rejects_unknown_augment():
    from netfrontier.compress.qat import QATConfig
    from netfrontier.errors import OptionError

    with pytest.raises(OptionError, match="augmentation"):
        QATConfig(augment="mixup")


def test_qat_learning_rate_is_chosen_on_the_tune_half_only(trained):
    from netfrontier.compress.study import StudyOptions, _select_qat_lr

    model, tune, _ = trained
    q = quantize(model, QuantConfig(wbits=2, abits=4, first_last_bits=None),
                 list(tune.batches(40)))
    opts = StudyOptions(qat_lrs=(1e-6, 2e-3), qat_select_epochs=2,
                        qat_config=QATConfig(epochs=6, batch_size=20, scale_lr=2e-2,
                                             augment="crop"))
    cfg, sel = _select_qat_lr(opts, q, model, tune, lambda s: None)
    assert [t["lr"] for t in sel["trials"]] == [1e-6, 2e-3]
    assert cfg.lr == max(sel["trials"], key=lambda t: t["top1"])["lr"] and cfg.epochs == 6
    assert "tune half" in sel["rule"]


def test_qat_feature_distillation_taps_the_batch_norms_and_trains(trained):
    from netfrontier.compress.distill import Taps as _Taps, feature_loss
    from netfrontier.compress.qat import feature_taps

    x = next(trained[1].batches(40))
    assert feature_taps(trained[0], x[:1]) == ["1", "4", "7"]  # the BNs after the three convs
    ratios = []
    for seed in (SEED, SEED + 1, SEED + 2):
        model, tune, test = _trained(seed)
        q = quantize(model, QuantConfig(wbits=2, abits=4, first_last_bits=None),
                     list(tune.batches(40)))
        x = torch.cat(list(test.batches(120)))

        def feat_err(m):
            ts, tt = _Taps(m, ["1", "4", "7"]), _Taps(model, ["1", "4", "7"])
            with torch.no_grad():
                m(x), model(x)
            ts.remove(), tt.remove()
            return feature_loss(ts.out, tt.out).item()

        runs = {}
        for fw in (0.0, 10.0):
            torch.manual_seed(seed)
            runs[fw] = qat(q, model, tune, QATConfig(epochs=4, batch_size=20, lr=2e-3,
                                                      scale_lr=2e-2, feature_weight=fw))
        ratios.append(feat_err(runs[10.0]) / feat_err(runs[0.0]))
        assert not runs[10.0][1]._forward_hooks and not model[1]._forward_hooks  # taps removed
    # matching the teacher's features brings held-out features closer than its logits alone:
    # seeds 0-9 gave ratios 0.71-0.94 (means of three 0.82-0.90)
    assert max(ratios) < 1.0 and sum(ratios) / 3 < 0.95, ratios
    with pytest.raises(OptionError, match="feature weight"):
        QATConfig(feature_weight=-1)


def test_qat_can_keep_the_weight_scales_while_training_the_rest(trained):
    from netfrontier.compress.ptq import quantizers

    model, tune, test = trained
    q = quantize(model, QuantConfig(wbits=2, abits=4, first_last_bits=None),
                 list(tune.batches(40)))
    qq = qat(q, model, tune, QATConfig(epochs=2, batch_size=20, lr=2e-3, scale_lr=2e-2,
                                       weight_scale_lr=0.0))
    before, after = dict(quantizers(q)), dict(quantizers(qq))
    moved = {p: not torch.equal(before[p].scale, after[p].scale) for p in before}
    assert not any(moved[p] for p, m in before.items() if isinstance(m, WeightQuantizer))
    assert any(moved[p] for p, m in before.items() if isinstance(m, ActQuantizer))
    with pytest.raises(OptionError, match="learning rates"):
        QATConfig(weight_scale_lr=-1.0)
