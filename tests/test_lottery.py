"""Iterative magnitude pruning and lottery tickets on scikit-learn's digits (seconds), and what
sparse weights cost on chips with and without weight compression or zero-skipping."""
from __future__ import annotations

import copy

import pytest
import torch
import yaml

from netfrontier.compress.lottery import (LotteryConfig, build, density, load_dataset,
                                          magnitude_masks, prunable, random_masks, run_lottery,
                                          summary)
from netfrontier.cost.analytical import estimate
from netfrontier.errors import OptionError
from netfrontier.graph.torch_capture import capture_module
from netfrontier.hardware.registry import PRESET_DIR, get_hardware
from netfrontier.hardware.spec import spec_from_dict

torch.set_num_threads(2)


def test_masks_remove_the_smallest_weights_per_layer_and_globally():
    torch.manual_seed(0)
    model = build("lenet300", 8)
    masks = {n: torch.ones_like(w) for n, w in prunable(model).items()}
    per_layer = magnitude_masks(model, masks, 0.3, "layer", last_rate=0.15)
    names = list(per_layer)
    for n in names[:-1]:
        assert abs(float(per_layer[n].mean()) - 0.7) < 0.01
    assert abs(float(per_layer[names[-1]].mean()) - 0.85) < 0.02
    w = prunable(model)[names[0]].detach().abs()
    assert w[per_layer[names[0]].bool()].min() >= w[~per_layer[names[0]].bool()].max()
    glob = magnitude_masks(model, masks, 0.5, "global")
    assert abs(density(glob) - 0.5) < 0.01
    rnd = random_masks(per_layer, torch.Generator().manual_seed(1))
    assert all(int(rnd[n].sum()) == int(per_layer[n].sum()) for n in names)


def test_imp_rounds_rewind_keep_zeros_and_learn():
    cfg = LotteryConfig(model="lenet300", dataset="digits", rounds=2, rate=0.5, last_rate=None,
                        epochs=4,
                        seeds=(0,), batch=64)
    rows = run_lottery(cfg)
    dense = [r for r in rows if r["condition"] == "dense"][0]
    assert dense["accuracy"] > 85  # digits is learnt (chance: 10%)
    ticket = [r for r in rows if r["condition"] == "winning ticket"]
    assert [round(r["density"], 2) for r in ticket] == [0.5, 0.25]
    assert all(r["accuracy"] > 60 for r in rows)
    table = summary(rows)
    assert {r["condition"] for r in table} == {"dense", "winning ticket",
                                               "same mask, random init",
                                               "random mask, random init"}


def test_bad_lottery_options_are_one_error():
    with pytest.raises(OptionError, match="unknown lottery model 'resnet'"):
        LotteryConfig(model="resnet")
    with pytest.raises(OptionError, match="unknown data set 'cifar'"):
        LotteryConfig(dataset="cifar")
    with pytest.raises(OptionError, match="rate must be in"):
        LotteryConfig(rate=1.5)


def _sparse_chip(**extra):
    d = yaml.safe_load((PRESET_DIR / "img-series4-1core.yaml").read_text())
    d.update(name="sparse-chip", **extra)
    d["sources"].update({k: "test" for k in extra})
    return spec_from_dict(d, "sparse.yaml")


def test_sparse_weights_cost_only_where_the_chip_supports_them():
    train, _ = load_dataset("digits")
    graph = capture_module(build("lenet300", 8), (1, 1, 8, 8), model_name="lenet")
    half = {n: 0.1 for n in prunable(build("lenet300", 8))}
    dense_chip = get_hardware("tpu-v1")
    assert estimate(graph, dense_chip, layer_density=half).totals() == \
        estimate(graph, dense_chip).totals()  # no compression, no skipping: zeros cost the same
    comp = _sparse_chip(weight_compression="entropy", skip_zero_weights=False)
    d0, d1 = (estimate(graph, comp).totals(), estimate(graph, comp, layer_density=half).totals())
    assert d1["dram_bytes"] < 0.3 * d0["dram_bytes"]  # 10% nonzero + ~0.47 bit/weight pattern
    skip = _sparse_chip(weight_compression="bitmap", skip_zero_weights=True)
    s0 = estimate(graph, skip).columns
    s1 = estimate(graph, skip, layer_density=half).columns
    mac = s0["macs"] > 0
    assert (abs(s1["compute_s"][mac] - 0.1 * s0["compute_s"][mac]) < 1e-15).all()
    with pytest.raises(OptionError, match="density of '1' must be in"):
        estimate(graph, comp, layer_density={"1": 0.0})
