"""Profiles that hold over time: anchors recorded at fit time, re-timed and applied by
`calibrate --reanchor`, and `validate` saying when a profile has drifted."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from netfrontier.errors import MeasurementError
from netfrontier.hardware.registry import PRESET_DIR, get_hardware
from netfrontier.hardware.spec import spec_from_dict
from netfrontier.measure import calibrate as cal

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "cpu" / "cpu-2core-fp32-eager.calibration.jsonl"
HOST, DEV = cal.ANCHORS["host"], cal.ANCHORS["device"]


def _profile():
    return yaml.safe_load((PRESET_DIR / "cpu-2core-fp32-eager.yaml").read_text())


def test_shipped_cpu_profile_records_the_anchors_its_raw_data_gives():
    spec = get_hardware("cpu-2core-fp32-eager")
    assert set(spec.calibration.anchors) == set(HOST + DEV)
    recs = cal.load_records(RAW)
    assert cal.anchors_from_records(recs) == spec.calibration.anchors


def test_refit_records_anchors():
    recs = cal.load_records(RAW)
    d = cal.fit_profile(recs, "cpu-x", 32 * 2**20)
    assert d["calibration"]["anchors"] == cal.anchors_from_records(recs)
    spec_from_dict(d, "cpu-x")


def test_reanchor_moves_host_figures_by_the_host_factor_and_curves_by_time():
    d = _profile()
    then = d["calibration"]["anchors"]
    now = {n: then[n] * (2.0 if n in HOST else 0.5) for n in then}
    new, f = cal.reanchor_profile(d, now)
    assert f["host"] == pytest.approx(2.0) and f["device"] == pytest.approx(0.5)
    c0, c1 = d["calibration"], new["calibration"]
    assert c1["fixed_s"] == pytest.approx(2 * c0["fixed_s"], rel=1e-3)
    assert c1["host_view_s"] == pytest.approx(2 * c0["host_view_s"], rel=1e-3)
    assert c1["anchors"] == pytest.approx(now, rel=1e-5)
    host_t = math.log10(np.exp(np.mean([np.log(then[n] / 16) for n in HOST])))
    dev_t = math.log10(np.exp(np.mean([np.log(then[n] / 16) for n in DEV])))
    for cls, knots in c0["device_s"].items():
        for (x, y), (x1, y1) in zip(knots, c1["device_s"][cls]):
            assert x1 == x
            if y <= host_t:
                assert y1 - y == pytest.approx(math.log10(2.0), abs=1e-4)
            elif y >= dev_t:
                assert y1 - y == pytest.approx(math.log10(0.5), abs=1e-4)
            else:
                assert math.log10(0.5) - 1e-4 <= y1 - y <= math.log10(2.0) + 1e-4
    assert "re-anchored" in c1["provenance"]
    spec_from_dict(new, "cpu-re")  # still a valid profile


def test_reanchored_profile_predicts_slower_when_the_machine_is_slower():
    from netfrontier.cost.analytical import estimate
    from tests.conftest import captured

    d = _profile()
    then = d["calibration"]["anchors"]
    new, _ = cal.reanchor_profile(d, {n: 1.5 * t for n, t in then.items()})
    g = captured("resnet18")
    a = estimate(g, spec_from_dict(d, "a")).latency_s
    b = estimate(g, spec_from_dict(new, "b")).latency_s
    assert b == pytest.approx(1.5 * a, rel=0.02)


def test_no_anchors_and_all_stalled_are_errors():
    d = _profile()
    d["calibration"].pop("anchors")
    with pytest.raises(MeasurementError, match="records no anchors"):
        cal.reanchor_profile(d, {})
    with pytest.raises(MeasurementError, match="no anchor could be timed"):
        cal.reanchor_profile(_profile(), {})


def test_time_anchors_times_real_cases():
    now = cal.time_anchors(list(HOST), "cpu", "eager", "fp32", min_time_s=0.02)
    assert set(now) <= set(HOST)
    assert all(0 < t < 1 for t in now.values())


def _cli(*args):
    return subprocess.run([sys.executable, "-c", "from netfrontier.cli import main; main()",
                           *args], capture_output=True, text=True, env=dict(os.environ),
                          timeout=300)


def test_reanchor_errors_are_one_line(tmp_path):
    d = _profile()
    d["calibration"].pop("anchors")
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump(d))
    other = _profile()
    other["sources"]["device"] = "Some Other CPU"
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text(yaml.safe_dump(other))
    for args, msg in ((("calibrate", "--reanchor", str(bare)), "records no anchors"),
                      (("calibrate", "--reanchor", "nvidia-t4"), "records no anchors"),
                      (("calibrate", "--reanchor", "no-such-profile"), "unknown hardware"),
                      (("calibrate", "--reanchor", str(elsewhere)), "was fitted on Some Other"),
                      (("calibrate",), "needs --name")):
        p = _cli(*args)
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert p.returncode == 2 and len(lines) == 1 and msg in lines[0], (args, p.stderr)
