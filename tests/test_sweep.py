"""Design-space sweeps: the vectorised costs equal per-spec `estimate` on random
configurations of every analytical preset; impossible sweeps are one clear line, exit 2."""
from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import pytest

from netfrontier.cost import sweep as sw
from netfrontier.cost.analytical import estimate
from netfrontier.errors import OptionError, SpecError
from netfrontier.hardware.registry import get_hardware, preset_names
from tests.conftest import captured

ANALYTICAL = [n for n in preset_names() if not get_hardware(n).calibration.provenance]


def _random_grid(rng: random.Random, hw) -> dict:
    keys = {
        "onchip_mb": lambda: round(rng.uniform(0.05, 64), 3),
        "dram_gbps": lambda: round(10 ** rng.uniform(-0.5, 3), 3),
        "cores": lambda: rng.choice([1, 2, 3, 4, 8, 16]),
        "clock_ghz": lambda: round(rng.uniform(0.1, 2.0), 3),
        "tile.n": lambda: rng.choice([1, 8, 16, 32, 64, 128]),
        "tile.m": lambda: rng.choice([1, 4, 8, 14, 64]),
        "tile_depthwise.g": lambda: rng.choice([1, 16, 32, 64]),
        "param_memory_mb": lambda: rng.choice([0.0, 0.5, 4.0, 16.0]),
        "core_dram_gbps": lambda: round(rng.uniform(1, 100), 2),
        "mapping_efficiency": lambda: round(rng.uniform(0.3, 1.0), 2),
        "op_overhead_us": lambda: round(rng.uniform(0, 50), 2),
    }
    chosen = rng.sample(sorted(keys), 3)
    grid = {k: sorted({keys[k]() for _ in range(rng.randint(1, 3))}) for k in chosen}
    grid["depthwise"] = rng.sample(list(sw.DEPTHWISE), rng.randint(1, 3))
    return grid


@pytest.mark.parametrize("name", ANALYTICAL)
@pytest.mark.parametrize("model", ["mobilenet_v2", "resnet18", "vit_b_32"])
def test_sweep_equals_per_spec_estimate_on_random_configurations(name, model):
    rng = random.Random(f"{name}/{model}")
    base, g = get_hardware(name), captured(model)
    for _ in range(2):
        grid = _random_grid(rng, base)
        try:
            specs = sw.grid_specs(base, grid)
        except SpecError:
            continue  # e.g. a weight buffer the random on-chip size cannot hold
        got = sw.sweep_costs(g, specs)
        for k in rng.sample(range(len(specs)), min(len(specs), 6)):
            t = estimate(g, specs[k])
            assert got["latency_s"][k] == pytest.approx(t.latency_s, rel=1e-9), (grid, k)
            assert got["dram_bytes"][k] == pytest.approx(t.dram_bytes, rel=1e-9)
            assert got["energy_j"][k] == pytest.approx(t.energy_j, rel=1e-9)
            assert got["array_utilization"][k] == pytest.approx(t.array_utilization(),
                                                                rel=1e-9, abs=1e-12)
            assert got["unsupported_layers"][k] == t.totals()["unsupported_layers"]


def test_sweep_at_a_batch_of_images_on_dpu_cores():
    base, g = get_hardware("dpu-b4096-zcu104"), captured("resnet18", batch=2)
    specs = sw.grid_specs(base, sw.parse_vary(["cores=1,2,3", "onchip_mb=0.5,2"]))
    got = sw.sweep_costs(g, specs)
    for k, s in enumerate(specs):
        assert got["latency_s"][k] == pytest.approx(estimate(g, s).latency_s, rel=1e-9)
        assert got["dram_bytes"][k] == pytest.approx(estimate(g, s).dram_bytes, rel=1e-9)


def test_parse_vary_ranges_and_lists():
    v = sw.parse_vary(["onchip_mb=0.5..64:log:8", "dram_gbps=6,12,25,50", "cores=1..4",
                       "depthwise=fused|unfused|none", "tile.n=16,32"])
    assert v["onchip_mb"][0] == 0.5 and v["onchip_mb"][-1] == 64 and len(v["onchip_mb"]) == 8
    assert np.allclose(np.diff(np.log(v["onchip_mb"])), np.log(2))
    assert v["dram_gbps"] == [6, 12, 25, 50] and v["cores"] == [1, 2, 3, 4]
    assert v["depthwise"] == ["fused", "unfused", "none"] and v["tile.n"] == [16, 32]
    assert len(sw.grid(v)) == 8 * 4 * 4 * 3 * 2


@pytest.mark.parametrize("items, error, message", [
    (["onchip_mb=64..0.5:log:8"], OptionError, "empty range"),
    (["onchip_mb=1..8:log:0"], OptionError, "N at least 1"),
    (["onchip_mb="], OptionError, "has no values"),
    (["ocm=1,2"], OptionError, "unknown key 'ocm'"),
    (["depthwise=sometimes"], OptionError, "unknown value 'sometimes'"),
    (["cores=1.5"], OptionError, "whole numbers"),
    (["cores=1,2", "cores=4"], OptionError, "given twice"),
    (["cores=0"], SpecError, "cores=0: 'cores' = 0 is implausible"),
    (["dram_gbps=1e9"], SpecError, "'dram_bytes_per_s' = 1e\\+18 is implausible"),
    (["tile.n=0"], SpecError, "'tile.n' = 0 is implausible"),
])
def test_impossible_sweeps_are_one_error(items, error, message):
    with pytest.raises(error, match=message):
        sw.grid_specs(get_hardware("img-series4-1core"), sw.parse_vary(items))


def test_calibrated_profiles_cannot_be_swept():
    with pytest.raises(OptionError, match="calibrated runtime profile"):
        sw.grid_specs(get_hardware("cpu-2core-fp32-eager"), sw.parse_vary(["cores=1,2"]))


def test_frontier_over_configs_counts_shares():
    costs = np.array([[1.0, 1.0], [2.0, 0.6], [3.0, 3.0]])
    f = sw.frontier_over_configs(costs, np.array([70.0, 75.0, 74.0]))
    assert list(f["share_on_frontier"]) == [0.5, 1.0, 0.0]
    assert list(f["on_mean_frontier"]) == [True, True, False]


def _cli(*args):
    return subprocess.run([sys.executable, "-c", "from netfrontier.cli import main; main()",
                           *args], capture_output=True, text=True, env=dict(os.environ),
                          timeout=300)


@pytest.mark.parametrize("args, message", [
    (["--vary", "onchip_mb=8..1"], "empty range"),
    (["--vary", "cores=0"], "'cores' = 0 is implausible"),
    (["--vary", "bogus=1"], "unknown key 'bogus'"),
    (["--vary", "cores=1,2", "--objective", "speed"], "unknown objective"),
])
def test_impossible_sweeps_through_the_command_exit_2(tmp_path, args, message):
    p = _cli("sweep", "--hw", "img-series4-1core", "--models", "resnet18", "--out",
             str(tmp_path / "o"), *args)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and message in lines[0], p.stderr
    assert not (tmp_path / "o" / "points.csv").exists()


def test_sweep_command_writes_points_heatmap_and_frontier(tmp_path):
    p = _cli("sweep", "--hw", "dpu-b4096-zcu104", "--vary", "depthwise=none,fused",
             "--vary", "onchip_mb=1,4", "--models", "mobilenet_v2,resnet18,resnet50",
             "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    lines = (tmp_path / "points.csv").read_text().splitlines()
    assert len(lines) == 1 + 3 * 4 and lines[0].startswith("model,depthwise,onchip_mb")
    assert (tmp_path / "heatmap_mobilenet_v2_vs_resnet50.png").stat().st_size > 1000
    assert (tmp_path / "frontier_latency.csv").exists()
