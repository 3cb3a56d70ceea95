"""Channel pruning: consistent surgery, folding, tile rounding, hardware-aware allocation."""
from __future__ import annotations

import copy

import pytest
import torch

from _tiny import TinyMobile, randomize_bn
from netfrontier.compress.allocate import (Costing, allocate, cost_curves, levels, reachable,
                                           sensitivity, tile_quantum, uniform)
from netfrontier.compress.prune import Plan, Pruner, load_pruned, lowest, save_pruned
from netfrontier.errors import InfeasibleError, OptionError
from netfrontier.graph.torch_capture import capture_module
from netfrontier.hardware.registry import get_hardware

torch.set_num_threads(2)
SHAPE = (1, 3, 64, 64)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = randomize_bn(TinyMobile()).eval()
    x = torch.randn(8, *SHAPE[1:])
    return model, x


def _half_plan(pruner, scores, keep=0.5):
    return Plan({g.root: lowest(scores[g.root], int(g.channels * (1 - keep)))
                 for g in pruner.groups()})


def test_groups_cover_residual_depthwise_se_and_concat(net):
    model, x = net
    pr = Pruner(copy.deepcopy(model), x[:1])
    groups = {g.root: g for g in pr.groups()}
    stage = next(g for g in groups.values() if "b1.project.0" in g.modules)
    # the residual stream: stem, both projections and every reader of it are one group
    assert {"stem.0", "b1.project.0", "b2.project.0", "side.0", "b1.expand.0"} <= set(stage.modules)
    expanded = next(g for g in groups.values() if "b1.dw.0" in g.modules)
    assert {"b1.expand.0", "b1.dw.0", "b1.se.fc1", "b1.se.fc2", "b1.project.0"} <= \
        set(expanded.modules) and expanded.channels == 96
    assert "fc" not in groups  # the classifier keeps its classes


def test_pruned_network_is_smaller_consistent_and_equals_its_masked_simulation(net):
    model, x = net
    pr = Pruner(copy.deepcopy(model), x[:1])
    scores = pr.importance("l1")
    plan = _half_plan(pr, scores)
    means = pr.consumer_means([x])
    with torch.no_grad(), pr.masked(plan, means) as m:
        simulated = m(x)
    pruned = copy.deepcopy(pr.model)
    Pruner(pruned, x[:1]).apply(plan, means)
    with torch.no_grad():
        assert torch.allclose(pruned(x), simulated, atol=1e-5)
    g0, g1 = capture_module(model, SHAPE, model_name="a"), capture_module(pruned, SHAPE,
                                                                        model_name="b")
    assert g1.macs < 0.5 * g0.macs
    assert g1.params == sum(p.numel() for p in pruned.parameters())
    twin = capture_module(pr.shape_copy(plan), SHAPE, model_name="c")  # shapes only, no data
    assert twin.macs == g1.macs


def test_folding_keeps_the_removed_channels_mean_contribution(net):
    model, x = net
    pr = Pruner(copy.deepcopy(model), x[:1])
    scores = pr.importance("l1")
    g = next(g for g in pr.groups() if "b1.dw.0" in g.modules)
    plan = Plan({g.root: lowest(scores[g.root], g.channels // 3)})
    means = pr.consumer_means([x])
    with torch.no_grad():
        ref = pr.model(x)
        with pr.masked(plan, None) as m:
            plain = (m(x) - ref).pow(2).mean()
        with pr.masked(plan, means) as m:
            folded = (m(x) - ref).pow(2).mean()
        assert torch.equal(pr.model(x), ref)  # the simulation restores every weight
    assert folded < 0.5 * plain


def test_levels_are_tile_multiples():
    from netfrontier.compress.prune import Group

    g = Group("x", 200, ("x",))
    assert levels(g, 64, 0.25) == [200, 192, 128, 64]
    assert tile_quantum(get_hardware("img-series4-1core")) == 64
    assert tile_quantum(get_hardware("cpu-2core-fp32-eager")) == 1


def test_allocation_meets_the_target_on_the_cost_model(net):
    model, x = net
    hw = get_hardware("img-series4-1core")
    pr = Pruner(copy.deepcopy(model), x[:1])
    groups, scores = pr.groups(), pr.importance("l1")
    costing = Costing(pr, hw, SHAPE, "latency")
    base = costing.cost(Plan())
    q = 8
    low = reachable(costing, groups, scores, q, 0.25)
    target = base - 0.6 * (base - low)
    savings = cost_curves(costing, groups, scores, q, 0.25)
    sens = sensitivity(pr, groups, scores, pr.consumer_means([x]), x)
    alloc = allocate(costing, groups, scores, savings, sens, target, q, 0.25)
    assert alloc.cost <= target < base
    assert all(k % q == 0 or k == g.channels for g in groups for k in [alloc.kept[g.root]])
    assert costing.cost(alloc.plan(groups, scores)) == alloc.cost
    flat = uniform(costing, groups, scores, target, q, 0.25)
    assert flat.cost <= target
    with pytest.raises(InfeasibleError, match="keeping at least 25%"):
        allocate(costing, groups, scores, savings, sens, low * 0.5, q, 0.25)


def test_pruned_network_saves_loads_and_exports(net, tmp_path):
    model, x = net
    pr = Pruner(copy.deepcopy(model), x[:1])
    plan = _half_plan(pr, pr.importance("l2"))
    pruned = pr.apply(plan, pr.consumer_means([x]))
    save_pruned(pruned, [plan.to_json()], {"parent": "TinyMobile"}, tmp_path)
    again = load_pruned(tmp_path, randomize_bn(TinyMobile(), seed=5), x[:1])
    with torch.no_grad():
        assert torch.allclose(again(x), pruned(x), atol=1e-6)
    path = tmp_path / "pruned.onnx"
    torch.onnx.export(again, (x[:1],), str(path), dynamo=False)
    from netfrontier.graph.onnx_capture import capture_onnx

    assert capture_onnx(path).macs == capture_module(pruned, SHAPE, model_name="p").macs


def test_importance_options(net):
    model, x = net
    pr = Pruner(copy.deepcopy(model), x[:1])
    y = torch.zeros(len(x), dtype=torch.long)
    for kind in ("l1", "l2", "bn", "taylor"):
        scores = pr.importance(kind, [x], [y])
        assert all(len(s) == g.channels for g, s in zip(pr.groups(), scores.values()))
    with pytest.raises(OptionError, match="unknown importance 'fisher'"):
        pr.importance("fisher")
    with pytest.raises(OptionError, match="labelled"):
        pr.importance("taylor")


def test_run_prune_end_to_end_writes_a_loadable_smaller_network(net, tmp_path):
    from _tiny import blob_images
    from netfrontier.compress.prune_report import write_prune_report
    from netfrontier.compress.prune_study import PruneOptions, run_prune
    from netfrontier.measure.accuracy import Preprocess
    from netfrontier.models.pretrained import Pretrained

    model, _ = net
    torch.set_num_threads(1)  # small tensors: a second thread only waits
    images = blob_images(16, size=32, seed=3)
    pre = Pretrained("tiny", copy.deepcopy(model), 32, Preprocess(32, 32))
    opts = PruneOptions(hw="img-series4-1core", ratio=0.92, epochs=1, batch_size=8,
                        sens_images=4, round_to_tile=False, wbits=8)
    r = run_prune("tiny", opts, tmp_path, pre=pre, images=images,
                  hardware_also=("jetson-xavier-nx",))
    variants = {row["variant"]: row for row in r["rows"]}
    pruned = variants["pruned (hardware)"]
    assert pruned["cost"]["img-series4-1core"]["latency_s"] <= r["target"] * (1 + 1e-9)
    assert pruned["macs"] < variants["unpruned"]["macs"]
    assert {"pruned (hardware) + distillation", "pruned + PTQ W8A8"} <= set(variants)
    again = load_pruned(tmp_path, copy.deepcopy(model), images.preprocess.normalize(
        images.images[:1]))
    g = capture_module(again, (1, 3, 32, 32), model_name="again")
    assert g.macs == pruned["macs"] and g.params == pruned["params"]
    paths = write_prune_report(r, tmp_path, {"command": "test"})
    assert "Channels kept per group" in paths["html"].read_text()
