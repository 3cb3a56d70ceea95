"""`netfrontier serve`'s HTTP API on a real server: results that match the library, and bad input
(unknown names, path-like names, out-of-range figures, malformed or oversized YAML, limits)
answered by a 4xx with one clear message while the server stays up."""
from __future__ import annotations

import html
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from _serve import SMALL_MODELS, call, served, serve_store, url  # noqa: F401  (fixtures)
from netfrontier.cost.analytical import estimate
from netfrontier.hardware import checks
from netfrontier.hardware.registry import PRESET_DIR, get_hardware
from netfrontier.hardware.spec import load_spec, spec_from_dict

PRESET = "img-series4-1core"


def whatif(base, **body):
    return call(base, "/api/whatif", {"hw": PRESET, **body})


def assert_one_message(status, res, expect_status, *words):
    assert status == expect_status, res
    assert isinstance(res, dict) and list(res) == ["error"], res
    msg = res["error"]
    assert "\n" not in msg and "Traceback" not in msg and len(msg) < 400, msg
    for w in words:
        assert w in msg, msg


@pytest.fixture
def still_up(url):
    yield
    status, _, res = call(url, "/healthz")
    assert status == 200 and res["ok"] and res["models"] == len(SMALL_MODELS)


# results ----------------------------------------------------------------------------------------
def test_frontier_matches_the_library(url, served):
    status, _, d = call(url, f"/api/frontier?hw={PRESET}&objective=latency")
    assert status == 200 and d["count"] == len(SMALL_MODELS)
    state = served[1]
    hw = get_hardware(PRESET)
    for row in d["rows"]:
        graph = state.graph(row["model"], 1)
        assert row["latency_s"] == pytest.approx(estimate(graph, hw).latency_s, rel=1e-12)
    names = {n for t in d["figure"]["data"] for n in t.get("customdata") or []}
    assert names == SMALL_MODELS
    assert any(t["name"] == "Pareto frontier" for t in d["figure"]["data"])


def test_family_and_accuracy_filters(url):
    _, _, d = call(url, "/api/frontier?family=mobilenet")
    assert {r["model"] for r in d["rows"]} == {m for m in SMALL_MODELS if "mobilenet" in m}
    _, _, d = call(url, "/api/frontier?accuracy=measured")
    assert d["rows"] == [] and d["count"] == 0  # only efficientnet_lite has measured top-1


def test_whatif_recosts_and_downloads_a_valid_preset(url, tmp_path):
    hw = get_hardware(PRESET)
    status, _, base = whatif(url)
    assert status == 200 and base["changes"] == []
    status, _, d = whatif(url, set={"dram_bytes_per_s": 4 * hw.dram_bytes_per_s,
                                    "onchip_bytes": 2 * hw.onchip_bytes})
    assert status == 200 and len(d["changes"]) == 3  # bandwidth, on-chip, weight buffer share
    faster = {r["model"]: r["speedup"] for r in d["rows"]}
    assert set(faster) == SMALL_MODELS and all(s >= 1 for s in faster.values())
    assert max(faster.values()) > 1.2
    assert d["spec"]["weight_buffer_bytes"] == 2 * hw.weight_buffer_bytes

    status, headers, text = call(url, "/api/whatif.yaml", {
        "hw": PRESET, "set": {"dram_bytes_per_s": 4 * hw.dram_bytes_per_s, "cores": 2,
                              "tile": {"n": 128}}})
    assert status == 200 and 'filename="img-series4-1core-whatif.yaml"' in headers[
        "content-disposition"]
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    spec = load_spec(path)  # every HardwareSpec rule, as for any preset file
    assert spec.name == "img-series4-1core-whatif" and spec.cores == 2
    assert spec.dram_bytes_per_s == 4 * hw.dram_bytes_per_s and spec.tile["n"] == 128
    assert "what-if" in spec.sources["cores"] and spec.macs_per_cycle == hw.macs_per_cycle


def test_uploaded_yaml_is_the_same_as_the_preset(url):
    text = (PRESET_DIR / f"{PRESET}.yaml").read_text()
    status, _, up = call(url, "/api/whatif", {"yaml": text, "set": {"cores": 4}})
    _, _, named = whatif(url, set={"cores": 4})
    assert status == 200
    assert [r["latency_s"] for r in up["rows"]] == [r["latency_s"] for r in named["rows"]]


def test_model_view_has_layers_roofline_and_fallback(url):
    status, _, d = call(url, "/api/model?name=mobilenet_v3_small&hw=tpu-v1")
    assert status == 200 and d["model"] == "mobilenet_v3_small.IMAGENET1K_V1"
    assert len(d["layers"]) == d["totals"]["layers"] > 20
    assert d["totals"]["unsupported_layers"] > 0 and "hardswish" in " ".join(d["notes"])
    bounds = {t["name"].split(" (")[0]: len(t["x"]) for t in d["roofline"]["data"][2:]}
    assert set(bounds) == {"compute", "memory", "overhead", "unsupported", "unknown"}
    assert bounds["unsupported"] > 0
    assert any(r["fused"] > 1 for r in d["layers"])
    assert d["time"]["data"][0]["type"] == "waterfall"
    assert d["time"]["data"][0]["y"][-1] == pytest.approx(d["totals"]["latency_s"] * 1e6)


def test_compare_ranks_on_both_chips(url):
    status, _, d = call(url, "/api/compare?a=img-series4-1core&b=tpu-v1")
    assert status == 200 and {r["model"] for r in d["rows"]} == SMALL_MODELS
    assert sorted(r["rank_a"] for r in d["rows"]) == [1, 2, 3]
    assert all(r["change"] == r["rank_a"] - r["rank_b"] for r in d["rows"])


def test_studies_read_the_quantization_results(url):
    status, _, d = call(url, "/api/studies")
    assert status == 200 and d["studies"] and d["studies"][0]["kind"] == "quantization"
    assert d["studies"][0]["figures"] and "No search study exists yet" in d["search_message"]


def test_studies_without_results_say_so(tmp_path):
    from netfrontier.serve import api

    d = api.studies(tmp_path)
    assert d["studies"] == [] and "No search study exists yet" in d["search_message"]
    (tmp_path / "nas").mkdir()
    (tmp_path / "nas" / "results.json").write_text(json.dumps({"trials": [{}, {}],
                                                               "hypervolume": 0.5}))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text("{not json")
    (tmp_path / "prune").mkdir()
    (tmp_path / "prune" / "results.json").write_text(json.dumps({
        "meta": {"date": "today"}, "model": "resnet18", "hw": PRESET, "target": 0.5,
        "allocation": {}, "rows": [
            {"variant": f"{k}% channels", "estimated_top1": 70.0 - k / 10, "params": 1,
             "macs": 2, "cost": {PRESET: {"latency_s": 1e-3 * k, "dram_bytes": 1e6}}}
            for k in (50, 75, 100)]}))
    d = api.studies(tmp_path)
    assert d["search"][0]["trials"] == 2 and "search_message" not in d
    assert len(d["problems"]) == 1 and d["problems"][0].startswith("broken/results.json")
    prune = next(s for s in d["studies"] if s["kind"] == "pruning")
    assert prune["variants"] == 3 and len(prune["figures"]) == 1
    assert {"variant", f"{PRESET}:latency_s"} <= {c["key"] for c in prune["columns"]}


def test_static_files_come_from_the_packages(url):
    import importlib.util

    status, headers, text = call(url, "/static/plotly.min.js")
    plotly = Path(importlib.util.find_spec("plotly").origin).parent
    assert status == 200 and text == (plotly / "package_data" / "plotly.min.js").read_text()
    assert "max-age" in headers["cache-control"]
    status, headers, page = call(url, "/")
    assert status == 200 and "script-src 'self'" in headers["content-security-policy"]
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing from the network


# bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize("path, status, words", [
    ("/api/model?name=resnet5", 404, ("unknown model 'resnet5'", "did you mean")),
    ("/api/model?name=../../etc/passwd", 404, ("unknown model",)),
    ("/api/model?name=/etc/hosts", 404, ("unknown model",)),
    ("/api/model?name=model.onnx", 404, ("unknown model",)),
    ("/api/model?name=torchvision.models:resnet18", 404, ("unknown model",)),
    ("/api/frontier?hw=tpu-v2", 404, ("unknown hardware preset 'tpu-v2'", "tpu-v1")),
    ("/api/frontier?hw=../../../../etc/passwd", 404, ("unknown hardware preset",)),
    ("/api/frontier?hw=/etc/passwd", 404, ("unknown hardware preset",)),
    ("/api/frontier?hw=img-series4-1core.yaml", 404, ("unknown hardware preset",)),
    ("/api/frontier?hw=%2Fproc%2Fself%2Fenviron", 404, ("unknown hardware preset",)),
    ("/api/frontier?wbits=3", 400, ("does not support 3-bit weights",)),
    ("/api/frontier?wbits=abc", 400, ("'wbits' must be a whole number",)),
    ("/api/frontier?wbits=99999999999999", 400, ("out of range",)),
    ("/api/frontier?batch=7", 400, ("batch 7 has no captured graphs",)),
    ("/api/frontier?objective=speed", 400, ("'objective' must be one of",)),
    ("/api/frontier?family=../x", 400, ("'family' must be one of",)),
    ("/api/frontier?accuracy=guessed", 400, ("'accuracy' must be one of",)),
    ("/api/frontier?hw=tpu-v1&hw=nvidia-t4", 400, ("given twice",)),
    ("/api/frontier?file=/etc/passwd", 400, ("unknown parameter 'file'",)),
    ("/api/frontier?hw=" + "a" * 300, 400, ("longer than 200 characters",)),
    ("/api/frontier?hw=" + "a" * 5000, 414, ("longer than 4,096 bytes",)),
    ("/api/nothing", 404, ("nothing at '/api/nothing'",)),
    ("/api/compare?a=tpu-v1&b=nope", 404, ("unknown hardware preset 'nope'",)),
])
def test_bad_query_is_a_4xx_with_one_message(url, still_up, path, status, words):
    got, _, res = call(url, path)
    assert_one_message(got, res, status, *words)


@pytest.mark.parametrize("body, status, words", [
    ({"set": {"cores": 0}}, 400, ("'cores' = 0 is implausible",)),
    ({"set": {"cores": 2.5}}, 400, ("'cores' must be a whole number",)),
    ({"set": {"dram_bytes_per_s": 1e20}}, 400, ("'dram_bytes_per_s'", "at most")),
    ({"set": {"onchip_bytes": -1}}, 400, ("'onchip_bytes' = -1 is implausible",)),
    ({"set": {"clock_hz": 10}}, 400, ("'clock_hz' = 10 is implausible",)),
    ({"set": {"clock_hz": "fast"}}, 400, ("'clock_hz' must be a number",)),
    ({"set": {"clock_hz": True}}, 400, ("'clock_hz' must be a number",)),
    ({"set": {"tile": {"n": 0}}}, 400, ("'tile.n' = 0 is implausible",)),
    ({"set": {"tile": {"q": 8}}}, 400, ("unknown tile dimension 'q'",)),
    ({"set": {"path": "/etc/passwd"}}, 400, ("unknown what-if knob 'path'",)),
    ({"set": [1, 2]}, 400, ("'set' must map knob names",)),
    ({"wbits": 3}, 400, ("does not support 3-bit weights",)),
    ({"batch": 4}, 400, ("batch 4 has no captured graphs",)),
    ({"hw": "../presets/tpu-v1"}, 404, ("unknown hardware preset",)),
    ({"file": "x"}, 400, ("unknown field 'file'",)),
    ({"yaml": "name: x"}, 400, ("give 'hw'", "not both")),
])
def test_bad_whatif_is_a_4xx_with_one_message(url, still_up, body, status, words):
    got, _, res = call(url, "/api/whatif", {"hw": PRESET, **body})
    assert_one_message(got, res, status, *words)


def _preset_text(**edit) -> str:
    d = checks.parse_yaml((PRESET_DIR / f"{PRESET}.yaml").read_text(), "x")
    d.update(edit)
    return yaml.safe_dump(d)


@pytest.mark.parametrize("text, status, words", [
    ("name: [unclosed", 400, ("uploaded YAML: malformed YAML at line",)),
    ("name: a\nname: b\n", 400, ("duplicate key 'name'",)),
    ("- just\n- a list\n", 400, ("top level must be a mapping",)),
    ("a: &x [1, 2]\nb: *x\n", 400, ("anchors and aliases",)),
    ("!!python/object/apply:os.system ['true']", 400, ("malformed YAML",)),
    (_preset_text(cores=0), 400, ("uploaded YAML: 'cores' = 0 is implausible",)),
    (_preset_text(name="../../etc/passwd"), 400, ("'name' = '../../etc/passwd' must be",)),
    (_preset_text(bogus=1), 400, ("unknown key 'bogus'",)),
    ("x: " + "y" * (70 * 1024), 413, ("uploaded YAML is", "the limit is 65,536")),
])
def test_bad_uploaded_yaml_is_a_4xx_with_one_message(url, still_up, text, status, words):
    got, _, res = call(url, "/api/whatif", {"yaml": text})
    assert_one_message(got, res, status, *words)


def test_bad_requests_are_refused(url, still_up):
    got, _, res = call(url, "/api/whatif", raw=b"x" * (200 * 1024),
                       headers={"Content-Type": "application/json"})
    assert_one_message(got, res, 413, "larger than the 131,072-byte limit")
    got, _, res = call(url, "/api/whatif", raw=b'{"hw": ', headers={
        "Content-Type": "application/json"})
    assert_one_message(got, res, 400, "not valid JSON")
    got, _, res = call(url, "/api/whatif", raw=b"[1]", headers={
        "Content-Type": "application/json"})
    assert_one_message(got, res, 400, "must be a JSON object")
    got, _, res = call(url, "/api/whatif", raw=b"hw=tpu-v1", headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert_one_message(got, res, 415, "Content-Type: application/json")
    got, _, res = call(url, "/api/whatif")
    assert_one_message(got, res, 405, "GET is not allowed")
    got, _, text = call(url, "/", headers={"Host": "attacker.example"})
    assert got == 400 and "Invalid host header" in text


def test_a_chunked_body_past_the_limit_is_refused(url, still_up):
    import http.client
    from urllib.parse import urlsplit

    conn = http.client.HTTPConnection(urlsplit(url).hostname, urlsplit(url).port, timeout=30)
    chunks = (b'{"hw": "' + b"x" * 8192 for _ in range(40))  # 320 KiB, no Content-Length
    conn.request("POST", "/api/whatif", body=chunks, encode_chunked=True,
                 headers={"Content-Type": "application/json"})
    res = conn.getresponse()
    assert_one_message(res.status, json.loads(res.read()), 413, "131,072-byte limit")
    conn.close()


def test_options_list_what_the_server_has(url):
    status, _, d = call(url, "/api/options")
    assert status == 200 and set(d["models"]) == SMALL_MODELS and d["batches"] == [1]
    assert {"mobilenet", "resnet"} <= set(d["families"]) and "latency" in d["objectives"]
    assert any(h["name"] == PRESET and h["knobs"] for h in d["hardware"])


def test_bad_page_parameters_are_a_plain_error_page(url, still_up):
    for path, status, words in (("/model?name=nosuchnet", 404, "unknown model 'nosuchnet'"),
                                ("/?hw=tpu-v1&bogus=1", 400, "unknown parameter 'bogus'"),
                                ("/nowhere", 404, "nothing at '/nowhere'"),
                                ("/static/../../etc/passwd", 404, "nothing at"),
                                ("/static/%2e%2e%2fstore.py", 404, "nothing at"),
                                ("/static/plotly.js", 404, "no static file 'plotly.js'")):
        got, headers, page = call(url, path)
        page = html.unescape(page)
        assert got == status and headers["content-type"].startswith("text/html")
        assert words in page and "Traceback" not in page and "<script" not in page


# the command ------------------------------------------------------------------------------------
def _serve_cmd(*args, env=None):
    return subprocess.Popen([sys.executable, "-c", "from netfrontier.cli import main; main()",
                             "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env or dict(os.environ))


def test_serve_command_prints_the_address_and_stops_on_ctrl_c(serve_store, tmp_path):
    proc = _serve_cmd("--store", str(serve_store), "--port", "0", "--studies", str(tmp_path))
    try:
        line = proc.stdout.readline()  # printed once the zoo is loaded and the port bound
        m = re.search(r"open (http://127\.0\.0\.1:(\d+)/) in a browser", line)
        assert m and f"{len(SMALL_MODELS)} models" in line, line + proc.stderr.read()
        status, _, res = call(m.group(1).rstrip("/"), "/healthz")  # waits in the backlog
        assert status == 200 and res["ok"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "interrupted" not in err


@pytest.mark.parametrize("args, words", [
    (("--store", "/nonexistent/store.sqlite"), "does not exist; run 'netfrontier zoo' first"),
    (("--port", "70000"), "--port must be at most 65535"),
    (("--studies", "/nonexistent"), "--studies '/nonexistent' is not a folder"),
])
def test_serve_command_bad_options_are_one_line(serve_store, args, words):
    full = ("--store", str(serve_store), *args) if "--store" not in args else args
    proc = _serve_cmd(*full)
    out, err = proc.communicate(timeout=60)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and words in lines[0], err


def test_a_taken_port_is_one_line(serve_store):
    from netfrontier.serve.app import bind

    sock = bind("127.0.0.1", 0)
    sock.listen()
    try:
        proc = _serve_cmd("--store", str(serve_store), "--port", str(sock.getsockname()[1]))
        out, err = proc.communicate(timeout=60)
    finally:
        sock.close()
    assert proc.returncode == 2 and "cannot serve on 127.0.0.1" in err, err


def test_another_host_warns(serve_store):
    proc = _serve_cmd("--store", str(serve_store), "--port", "0", "--host", "0.0.0.0")
    try:
        line = proc.stdout.readline()
        assert "open http://127.0.0.1:" in line, proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert "warning: serving on 0.0.0.0" in err and "no authentication" in err
    assert proc.returncode == 0


def test_spec_from_dict_is_the_rule(url):
    """The server's refusal of a figure is spec_from_dict's message for the same figure."""
    raw = checks.parse_yaml((PRESET_DIR / f"{PRESET}.yaml").read_text(), "x")
    raw["cores"] = 0
    with pytest.raises(Exception) as exc:
        spec_from_dict(raw, f"what-if of {PRESET}")
    _, _, res = whatif(url, set={"cores": 0})
    assert res["error"] == str(exc.value)
