"""The command line end to end: analyze, zoo (store, resume, outputs), recommend, hw; bad input."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from netfrontier.store import Store
from netfrontier.zoo import zoo_rows


def run(*args, store=None, check=True):
    env = dict(os.environ, COLUMNS="200")
    if store:
        env["NETFRONTIER_STORE"] = str(store)
    proc = subprocess.run([sys.executable, "-c", "from netfrontier.cli import main; main()",
                           *args], capture_output=True, text=True, env=env, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_analyze_json():
    d = json.loads(run("analyze", "resnet18", "--hw", "img-series4-8core", "--json").stdout)
    assert d["model"] == "resnet18.IMAGENET1K_V1" and d["hardware"] == "img-series4-8core"
    assert d["macs"] == 1814073344 and len(d["layers"]) > 10
    assert {"name", "op", "macs", "latency_s", "dram_bytes", "energy_j", "bound"} <= set(
        d["layers"][0])


def test_analyze_table_flags_fallback():
    out = run("analyze", "vit_b_32", "--hw", "tpu-v1").stdout
    assert "unsupported" in out and "fall back" in out and "layernorm" in out


@pytest.mark.parametrize("args, message", [
    (("analyze", "resnet5"), "did you mean resnet50"),
    (("analyze", "resnet18", "--hw", "tpu-v2"), "unknown hardware preset 'tpu-v2'"),
    (("analyze", "resnet18", "--wbits", "3"), "does not support 3-bit weights"),
    (("analyze", "resnet18", "--batch", "0"), "--batch must be at least 1"),
    (("recommend", "--min-top1", "99"), "no model reaches top-1"),
    (("bench", "resnet18", "--runtime", "tensorrt"), "unknown runtime 'tensorrt'"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    proc = run(*args, store=tmp_path / "s.sqlite", check=False)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr


@pytest.mark.parametrize("args, message", [
    (("nosuchcmd",), "No such command 'nosuchcmd'"),
    (("analyze",), "Missing argument 'model'"),
    (("analyze", "resnet18", "--wbits", "abc"), "Invalid value for '--wbits'"),
    (("analyze", "resnet18", "--no-such-option"), "No such option: --no-such-option"),
    (("hw", "nosuch"), "No such command 'nosuch'"),
])
def test_usage_errors_are_one_line_and_exit_2(args, message):
    proc = run(*args, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0] and "--help" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [(), ("hw",)])
def test_a_group_without_command_prints_its_help(args):
    proc = run(*args, check=False)
    assert proc.returncode == 0 and "Usage:" in proc.stdout and proc.stderr == ""


def test_malformed_yaml_hw(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nclock_hz: [1,\n")
    proc = run("analyze", "resnet18", "--hw", str(bad), check=False)
    assert proc.returncode == 2 and "malformed YAML" in proc.stderr


def test_hw_list_and_show():
    assert "img-series4-1core" in run("hw", "list").stdout
    out = run("hw", "show", "tpu-v1").stdout
    assert "Jouppi" in out and "clock_hz" in out


def test_piped_output_is_whole_rows():
    """Piped (not a terminal): one unwrapped row per item, whatever COLUMNS says."""
    env_narrow = dict(os.environ, COLUMNS="40")
    call = [sys.executable, "-c", "from netfrontier.cli import main; main()"]

    def piped(*args):
        return subprocess.run(call + list(args), capture_output=True, text=True,
                              env=env_narrow, timeout=300).stdout

    listing = piped("hw", "list")
    assert sum("img-series4-1core" in ln.split() for ln in listing.splitlines()) == 1
    names = [json.loads(piped("hw", "list", "--json"))[i]["name"] for i in range(3)]
    assert all(n in listing for n in names)
    show = piped("hw", "show", "img-series4-1core")
    import re

    assert re.search(r"^clock_hz +1\.5 GHz", show, re.M) and "1 MiB" in show
    assert not any(r in show for r in ("{'int8'", "Fallback(host", "Calibration(", "(4, 5"))
    spec = json.loads(piped("hw", "show", "img-series4-1core", "--json"))
    assert spec["clock_hz"] == 1.5e9 and spec["macs_per_cycle"]["int8"] == 4096
    table = piped("analyze", "vit_b_32", "--hw", "tpu-v1")
    row = next(ln for ln in table.splitlines() if ln.startswith("encoder.layers.encoder_layer_0.ln_1"))
    assert row.rstrip().endswith("unsupported") and "layernorm" in row


def test_quantize_table_keeps_whole_names(capsys):
    from netfrontier.cli.compress_cmds import _print_table

    _print_table([{"model": "efficientnet_lite0", "variant": "W4A8", "method": "PTQ",
                   "cost": {"img-series4-1core": {"improvement_latency": 1.2,
                                                  "improvement_dram": 1.5,
                                                  "improvement_energy": 1.4}}}],
                 ["img-series4-1core", "img-series4-8core"])
    out = capsys.readouterr().out
    assert "efficientnet_lite0" in out and "img-series4-8core" in out and "…" not in out


def test_zoo_writes_outputs_and_reuses_the_store(tmp_path):
    store = tmp_path / "zoo.sqlite"
    out = tmp_path / "report"
    run("zoo", "--hw", "img-series4-1core", "--filter", "resnet1*", "--out", str(out), store=store)
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert {r["model"] for r in rows} == {"resnet18.IMAGENET1K_V1", "resnet101.IMAGENET1K_V1",
                                          "resnet101.IMAGENET1K_V2", "resnet152.IMAGENET1K_V1",
                                          "resnet152.IMAGENET1K_V2"}
    assert {"top1", "macs", "params", "latency_s", "dram_bytes", "energy_j",
            "on_frontier_latency"} <= set(rows[0])
    for name in ("report.html", "frontier_latency.png", "frontier_dram.png", "frontier_energy.png"):
        assert (out / name).stat().st_size > 1000
    html = (out / "report.html").read_text()
    assert "resnet152.IMAGENET1K_V2" in html and "data:image/png;base64," in html
    # a second run reads the store: no capture, no PyTorch import
    db = Store(store)
    calls = []
    zoo_rows("img-series4-1core", "resnet1*", store=db, progress=calls.append)
    assert calls == []
    # another preset re-uses the stored graphs instead of capturing again
    rows8 = zoo_rows("img-series4-8core", "resnet1*", store=db, progress=calls.append)
    assert len(calls) == 5 and all(r["hardware"] == "img-series4-8core" for r in rows8)


def test_warm_zoo_does_not_import_torch(tmp_path):
    store = tmp_path / "warm.sqlite"
    run("zoo", "--filter", "squeezenet*", "--out", str(tmp_path / "a"), store=store)
    code = ("import sys; from netfrontier.zoo import zoo_rows; from netfrontier.store import Store;"
            f"zoo_rows('img-series4-1core', 'squeezenet*', store=Store(r'{store}'));"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_recommend():
    out = run("recommend", "--hw", "img-series4-1core", "--min-top1", "80", "--filter", "resnet*",
              "--json").stdout
    best = json.loads(out)
    assert best["top1"] >= 80 and best["model"].startswith("resnet")
