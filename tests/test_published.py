"""validate --published: the shipped figures are well formed and cited, the held-out rule is
fixed, what a figure measures is modelled (host time, convolution rows only), bad files are one
clear line."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netfrontier.errors import MeasurementError
from netfrontier.hardware.registry import get_hardware, preset_names
from netfrontier.measure import published as pub

DATA = Path(__file__).resolve().parents[1] / "data" / "published"
HEADER = "source,preset,model,resolution,batch,wbits,abits,latency_ms,measures,citation\n"


@pytest.mark.parametrize("path", sorted(DATA.glob("*.csv")), ids=lambda p: p.name)
def test_shipped_files_load_and_every_row_cites_its_source(path):
    kind, rows = pub.load_published(path)
    assert rows
    for r in rows:
        assert len(r["citation"]) > 40, r
        if kind == "figures":
            assert r["preset"] in preset_names()
            assert r["measures"] in pub.load_kinds(DATA / "measurements.yaml")
            get_hardware(r["preset"]).precision_for(r["wbits"], r["abits"])


def test_held_out_rule_is_every_second_row_per_source():
    rows = [{"source": s, "preset": "p", "model": m, "resolution": 224, "batch": 1}
            for s in ("a", "b") for m in ("m3", "m1", "m2", "m4")]
    flags = pub.held_out_flags(rows)
    held = {(r["source"], r["model"]) for r, f in zip(rows, flags) if f}
    assert held == {("a", "m2"), ("a", "m4"), ("b", "m2"), ("b", "m4")}
    kind, shipped = pub.load_published(DATA / "vitis-ai-model-zoo.csv")
    f = pub.held_out_flags(shipped)
    assert abs(sum(f) - len(f) / 2) <= 1  # half of each source, whatever the file order
    assert pub.held_out_flags(list(reversed(shipped))) == list(reversed(f))


def _write(tmp_path, text, name="figs.csv", kinds=True):
    (tmp_path / name).write_text(text)
    if kinds:
        (tmp_path / "measurements.yaml").write_text(
            "plain:\n  counts: all\n  sources: {what: 'test'}\n"
            "withhost:\n  counts: all\n  host_fixed_s: 0.001\n  host_input_ops: 2\n"
            "  sources: {what: 'test'}\n"
            "convonly:\n  counts: conv\n  sources: {what: 'test'}\n")
    return tmp_path / name


def test_host_time_and_conv_rows_are_what_the_figure_measures(tmp_path):
    row = "s,{p},_tiny:tiny_cnn,32,1,8,8,1.0,{k},a citation long enough to count as one here\n"
    path = _write(tmp_path, HEADER + row.format(p="dpu-b4096-zcu104", k="plain") +
                  row.format(p="dpu-b4096-zcu104", k="withhost").replace("s,", "t,", 1) +
                  row.format(p="eyeriss-v1", k="convonly").replace("s,", "u,", 1)
                  .replace(",8,8,", ",16,16,"))
    res = pub.validate_published([path])
    plain, host, conv = res["rows"]
    hw = get_hardware("dpu-b4096-zcu104")
    assert plain["host_s"] == 0 and host["chip_s"] == pytest.approx(plain["chip_s"])
    assert host["host_s"] == pytest.approx(1e-3 + 2 * 3 * 32 * 32 / hw.fallback.ops_per_s)
    full = pub.predict_row({"wbits": 16, "abits": 16}, {"counts": "all", "host_fixed_s": 0,
                           "host_input_ops": 0}, get_hardware("eyeriss-v1"),
                           pub._graph("_tiny:tiny_cnn", 32, 1, None))
    assert conv["chip_s"] < full["chip_s"]  # pooling and the classifier do not count
    assert set(res["per_preset"]) == {"dpu-b4096-zcu104", "eyeriss-v1"}


def test_per_layer_comparison_follows_convolution_order(tmp_path):
    path = _write(tmp_path, "model,batch,resolution,layer,conv_index,total_ms,dram_mb,citation\n"
                  "_tiny:tiny_cnn,1,32,C1,0,1.0,0.5,a citation long enough to count\n"
                  "_tiny:tiny_cnn,1,32,C3,2,1.0,0.5,a citation long enough to count\n",
                  "layers.csv", kinds=False)
    res = pub.validate_published([path])
    assert [r["layer"] for r in res["layers"]] == ["C1", "C3"]
    assert res["layers"][0]["row"] != res["layers"][1]["row"]
    bad = _write(tmp_path, "model,batch,resolution,layer,conv_index,total_ms,dram_mb,citation\n"
                 "_tiny:tiny_cnn,1,32,C9,9,1.0,0.5,x\n", "bad.csv", kinds=False)
    with pytest.raises(MeasurementError, match="bad.csv, line 2: .* has only 3 convolution"):
        pub.validate_published([bad])


@pytest.mark.parametrize("text, kinds, message", [
    (HEADER.replace(",citation", ""), True, "missing column 'citation'"),
    (HEADER + "s,kv260,resnet18,224,1,8,8,-3,plain,cite\n", True,
     "line 2: 'latency_ms' must be a positive number"),
    (HEADER + "s,kv260,resnet18,224,x,8,8,3,plain,cite\n", True, "line 2: 'batch' must be a number"),
    (HEADER + "s,kv260,resnet18,224,1,8,8,3,plain,\n", True, "line 2: 'citation' is empty"),
    (HEADER + "s,kv260,resnet18,224,1,8,8,3,nosuch,cite\n", True,
     "measurement kind 'nosuch' is not described"),
    (HEADER + "s,kv260,resnet18,224,1,8,8,3,plain,cite\n", False, "no 'measurements.yaml'"),
    (HEADER, True, "no rows"),
])
def test_bad_files_are_one_error(tmp_path, text, kinds, message):
    path = _write(tmp_path, text, kinds=kinds)
    with pytest.raises(MeasurementError, match=message):
        pub.validate_published([path])


def test_cli_errors_are_one_line_exit_2(tmp_path):
    bad = _write(tmp_path, HEADER + "s,kv260,resnet18,224,1,8,8,-3,plain,cite\n")
    for args in (["validate", "--published", str(bad)], ["validate"],
                 ["validate", "--published", str(tmp_path / "none.csv")],
                 ["validate", "--published", str(bad), "--measurements", str(bad)]):
        p = subprocess.run([sys.executable, "-c", "from netfrontier.cli import main; main()",
                            *args], capture_output=True, text=True, env=dict(os.environ),
                           timeout=120)
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), \
            (args, p.stderr)


def test_shipped_kinds_have_sources():
    kinds = pub.load_kinds(DATA / "measurements.yaml")
    for name, k in kinds.items():
        assert len(str(k["sources"]["what"])) > 40, name
        for key in ("host_fixed_s", "host_input_ops"):
            if k[key]:
                assert len(str(k["sources"].get(key, ""))) > 40, (name, key)
    rows = list(csv.DictReader(open(DATA / "vitis-ai-model-zoo.csv")))
    assert {r["measures"] for r in rows} == {"vitis-ai-library-e2e"}
