"""Calibration that fails loudly: implausible fits refused, stalled timings retried and left out,
bad files and options one error line, user profiles found by name, progress in a pipe.

No test times anything: fits run on the committed CPU raw data (or records derived from it).
"""
from __future__ import annotations

import copy
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netfrontier.errors import MeasurementError, UnknownHardwareError
from netfrontier.graph.types import OpGraph
from netfrontier.measure import calibrate as cal_mod
from netfrontier.measure.calibrate import fit_profile, load_records
from netfrontier.measure.validate import load_measurements

CPU_DIR = Path(__file__).resolve().parents[1] / "data" / "cpu"
RAW = CPU_DIR / "cpu-2core-fp32-eager.calibration.jsonl"
ZOO = CPU_DIR / "zoo-cpu-2core-fp32-eager-b1.jsonl"
CACHE = 32 * 2**20
PARALLEL_ELEMS = 32768  # PyTorch's grain: larger ops are split over the threads
TICK_S = 8e-3  # what each such op cost in a quick run on the busy 2-core machine


@functools.lru_cache(maxsize=1)
def _records() -> tuple[dict, ...]:
    return tuple(load_records(RAW))


def records() -> list[dict]:
    """The committed records, each a fresh copy (tests change their timings, not graphs)."""
    return [dict(r) for r in _records()]


@functools.lru_cache(maxsize=1)
def _quick_names() -> frozenset[str]:
    from netfrontier.measure.microbench import suite

    return frozenset(c.name for c in suite((1,), quick=True))


def quick(recs: list[dict]) -> list[dict]:
    """The records of the cases `calibrate --quick` runs."""
    return [r for r in recs if r["case"] in _quick_names()]


@functools.lru_cache(maxsize=1)
def _quick_fit() -> dict:
    return fit_profile(quick(records()), "q", CACHE)


def quick_fit() -> tuple[dict, list[dict]]:
    """(the profile fitted from the quick cases, a fresh copy; those cases)."""
    return copy.deepcopy(_quick_fit()), quick(records())


def stalled_every_other(recs: list[dict]) -> list[dict]:
    """Timings as a busy machine gives them: in every other case, each op large enough to be
    split over the threads waits a scheduler tick for its second thread. (The blocks stay
    sound: disturbed, they would be refused by the switch check before the self-check.)"""
    for i, r in enumerate(recs):
        if i % 2 and not r["case"].startswith("block4_"):
            nodes = OpGraph.from_json(r["graph"]).nodes
            waits = sum(n.kind != "view" and n.output_elems > PARALLEL_ELEMS for n in nodes)
            r["median_s"] += TICK_S * waits
    return recs


# ---- the fit refuses what makes no sense ------------------------------------------------------

def test_quick_suite_of_sound_timings_fits_a_sane_profile():
    cal = quick_fit()[0]["calibration"]
    assert 0 <= cal["switch_s"] < 1e-4 and cal["fixed_s"] < 1e-4
    assert cal["device_s"]["conv"] and cal["device_s"]["elementwise"]


def test_the_shipped_cpu_fit_reproduces_its_own_cases():
    from netfrontier.hardware.spec import spec_from_dict
    from netfrontier.measure.fit_runtime import self_check

    recs = records()
    spec = spec_from_dict(fit_profile(recs, "x", CACHE), "x")
    error, cases = self_check(recs, spec)
    assert cases > 700 and error < 0.25  # 15%: far inside the 50% limit


def test_stalled_timings_are_refused_by_the_self_check():
    with pytest.raises(MeasurementError, match=r"misses its own \d+ micro-benchmarks by a median"):
        fit_profile(stalled_every_other(quick(records())), "q", CACHE)


def test_a_switch_cost_that_explains_the_blocks_is_refused():
    recs = records()
    for r in recs:
        if r["case"].startswith("block4_"):
            r["median_s"] *= 30  # blocks disturbed, repeated ops not: 7.7 ms per switch
    with pytest.raises(MeasurementError, match="switch_s = .* of the mixed-sequence cases"):
        fit_profile(recs, "x", CACHE)


@pytest.mark.parametrize("key, value, match", [
    ("fixed_s", -1e-6, "calibration.fixed_s = -1e-06"),
    ("host_view_s", float("nan"), "calibration.host_view_s = nan"),
    ("switch_s", float("inf"), "calibration.switch_s = inf"),
])
def test_negative_or_non_finite_figures_are_refused(key, value, match):
    spec, recs = quick_fit()
    spec["calibration"][key] = value
    with pytest.raises(MeasurementError, match=match.replace(".", r"\.")):
        cal_mod.check_fit(spec, recs, 0.0)


def test_non_finite_knot_is_refused():
    spec, recs = quick_fit()
    spec["calibration"]["device_s"]["conv"][0][1] = float("nan")
    with pytest.raises(MeasurementError, match=r"device_s\.conv has a non-finite knot"):
        cal_mod.check_fit(spec, recs, 0.0)


def test_a_few_stalled_cases_are_left_out_and_many_refused():
    recs = records()
    for r in recs[:5]:
        r["stalled"] = True
    assert "5 stalled ones left out" in fit_profile(recs, "x", CACHE)["calibration"]["provenance"]
    for r in recs[: len(recs) // 5]:
        r["stalled"] = True
    with pytest.raises(MeasurementError, match="while other work held the CPU cores"):
        fit_profile(recs, "x", CACHE)


def test_a_case_timed_while_the_cores_are_busy_is_retried_then_marked(monkeypatch):
    from torch import nn

    from netfrontier.measure import microbench

    tiny = microbench.Case("relu_tiny_b1", "relu", nn.ReLU(), (1, 4, 2, 2))
    timed = []
    monkeypatch.setattr(microbench, "suite", lambda batches, quick=False: [tiny])
    monkeypatch.setattr(cal_mod, "_time_case", lambda case, graph, *a: timed.append(1) or
                        {"case": case.name, "runtime": "eager", "median_s": 1e-5})
    monkeypatch.setattr("time.sleep", lambda s: None)
    monkeypatch.setattr(cal_mod, "cores_busy", lambda: True)
    recs = cal_mod.run_suite("cpu", "eager", "fp32", (1,))
    assert len(timed) == cal_mod.ATTEMPTS and recs[0]["stalled"] is True
    busy = iter([True, False, False, False])  # busy before the first timing, then free
    monkeypatch.setattr(cal_mod, "cores_busy", lambda: next(busy))
    timed.clear()
    recs = cal_mod.run_suite("cpu", "eager", "fp32", (1,))
    assert len(timed) == 2 and "stalled" not in recs[0]


# ---- bad files: one error naming the file and the line --------------------------------------

GOOD = {"model": "resnet18", "batch": 1, "median_s": 0.01}


@pytest.mark.parametrize("line, match", [
    ("{not json", "line 2: not JSON"),
    ("[1, 2]", "line 2: a record must be a JSON object, got list"),
    (json.dumps({"batch": 1, "median_s": 0.01}), "line 2: missing key 'model'"),
    (json.dumps({"model": "a", "median_s": 0.01}), "line 2: missing key 'batch'"),
    (json.dumps({"model": "a", "batch": 1}), "line 2: missing key 'median_s'"),
    (json.dumps({**GOOD, "median_s": 0}), "line 2: median_s must be a positive number"),
    (json.dumps({**GOOD, "median_s": -1.0}), "line 2: median_s must be a positive number"),
    ('{"model": "a", "batch": 1, "median_s": NaN}', "line 2: median_s must be a positive"),
    (json.dumps({**GOOD, "median_s": "fast"}), "line 2: median_s must be a positive number"),
])
def test_malformed_measurements_name_the_line(tmp_path, line, match):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + line + "\n")
    with pytest.raises(MeasurementError, match=match) as exc:
        load_measurements(path)
    assert str(path) in str(exc.value)


def test_malformed_calibration_records_name_the_file_and_line(tmp_path):
    with pytest.raises(MeasurementError, match="does not exist"):
        load_records(tmp_path / "none.jsonl")
    path = tmp_path / "raw.jsonl"
    path.write_text('{"case": "a", "runtime": "eager", "error": "cannot run"}\n\n'
                    '{"case": "b", "runtime": "eager", "median_s": 1e-5}\n')
    with pytest.raises(MeasurementError, match=r"raw\.jsonl, line 3: missing key 'min_s'"):
        load_records(path)


# ---- user profiles ----------------------------------------------------------------------------

def test_profile_dir_follows_the_environment(monkeypatch, tmp_path):
    from netfrontier.hardware.registry import profile_dir

    monkeypatch.setenv("NETFRONTIER_PROFILES", str(tmp_path / "p"))
    assert profile_dir() == tmp_path / "p"
    monkeypatch.delenv("NETFRONTIER_PROFILES")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert profile_dir() == tmp_path / "xdg" / "netfrontier" / "profiles"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert profile_dir() == tmp_path / "home" / ".config" / "netfrontier" / "profiles"


def test_user_profiles_are_found_by_name_after_the_shipped_presets(monkeypatch, tmp_path):
    from netfrontier.hardware.registry import (PRESET_DIR, get_hardware, hardware_names,
                                               preset_names, profile_names)

    monkeypatch.setenv("NETFRONTIER_PROFILES", str(tmp_path))
    with pytest.raises(UnknownHardwareError, match="unknown hardware preset 'my-cpu'"):
        get_hardware("my-cpu")
    shipped = (PRESET_DIR / "cpu-2core-fp32-eager.yaml").read_text()
    (tmp_path / "my-cpu.yaml").write_text(shipped.replace("name: cpu-2core-fp32-eager",
                                                          "name: my-cpu"))
    (tmp_path / "tpu-v1.yaml").write_text("not read: a shipped preset has this name")
    assert get_hardware("my-cpu").name == "my-cpu"
    assert get_hardware("tpu-v1").path.startswith(str(PRESET_DIR))
    assert profile_names() == ["my-cpu"] and "my-cpu" not in preset_names()
    assert hardware_names() == preset_names() + ["my-cpu"]
    with pytest.raises(UnknownHardwareError, match="did you mean my-cpu"):
        get_hardware("my-cpux")


# ---- progress when stderr is not a terminal ---------------------------------------------------

def test_progress_in_a_pipe_is_a_line_every_tenth(capsys):
    from netfrontier.cli.common import Progress

    with Progress("calibrating") as bar:
        for i in range(1, 247):
            bar.update(f"case{i}", i, 246)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 11 and lines[0] == "calibrating: 1/246 case1"
    assert lines[-1] == "calibrating: 246/246 case246"
    with Progress("costing") as bar:  # zoo_rows style: a total, then one call per item
        bar.set_total(20)
        for i in range(20):
            bar.update(f"m{i}")
    assert len(capsys.readouterr().err.splitlines()) == 11


def test_calibrate_reports_progress_in_a_pipe(monkeypatch, tmp_path, capsys):
    from netfrontier.cli import main

    def fake_suite(device, runtime, dtype, batches, progress=None, **options):
        for i in range(1, 31):
            progress(f"case{i}", i, 30)
        return quick(records())

    monkeypatch.setattr(cal_mod, "run_suite", fake_suite)
    monkeypatch.setenv("NETFRONTIER_PROFILES", str(tmp_path))
    with pytest.raises(SystemExit) as exc:
        main(["calibrate", "--name", "piped", "--onchip-mb", "32"])
    assert exc.value.code == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "calibrating cpu eager fp32: 1/30 case1" and len(err) == 11
    assert (tmp_path / "piped.yaml").is_file()


# ---- the command line: one line, exit 2, nothing written --------------------------------------

def run(*args, env=None):
    proc = subprocess.run([sys.executable, "-c", "from netfrontier.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})
    return proc


def _one_error_line(proc, message):
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture()
def tree(tmp_path):
    """tmp_path with an empty profile directory, a plain file and a malformed JSONL file."""
    (tmp_path / "a-file").write_text("")
    (tmp_path / "bad.jsonl").write_text("\n{oops\n")
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (("calibrate", "--name", "../../etc/x"), "--name '../../etc/x' is not a plain file name"),
    (("calibrate", "--name", "a/b"), "is not a plain file name"),
    (("calibrate", "--name", "x" * 65), "is not a plain file name"),
    (("calibrate", "--name", ".hidden"), "is not a plain file name"),
    (("calibrate", "--name", "tpu-v1"), "'tpu-v1' is a shipped preset"),
    (("calibrate", "--name", "x", "--min-time", "0"), "--min-time must be above 0"),
    (("calibrate", "--name", "x", "--min-time", "-1"), "--min-time must be above 0"),
    (("calibrate", "--name", "x", "--onchip-mb", "0"), "--onchip-mb must be above 0"),
    (("calibrate", "--name", "x", "--onchip-mb", "nan"), "--onchip-mb must be a finite number"),
    (("calibrate", "--name", "x", "--onchip-mb", "inf"), "--onchip-mb must be a finite number"),
    (("calibrate", "--name", "x", "--dtype", "int3"), "unknown dtype 'int3'"),
    (("calibrate", "--name", "x", "--out", "{tmp}/a-file"), "is a file, not a directory"),
    (("calibrate", "--name", "x", "--refit", "{tmp}/none.jsonl"), "does not exist"),
    (("calibrate", "--name", "x", "--refit", "{tmp}/bad.jsonl"), "bad.jsonl, line 2: not JSON"),
    (("validate", "--hw", "cpu-2core-fp32-eager", "--measurements", "{tmp}/bad.jsonl"),
     "bad.jsonl, line 2: not JSON"),
    (("validate", "--hw", "cpu-2core-fp32-eager", "--measurements", "{tmp}/none.jsonl"),
     "does not exist"),
    (("validate", "--hw", "cpu-2core-fp32-eager", "--measurements", str(ZOO), "--out",
      "{tmp}/a-file"), "is a file, not a directory"),
])
def test_bad_calibrate_and_validate_input_is_one_line(tree, args, message):
    before = _files(tree)
    proc = run(*(a.format(tmp=tree) for a in args),
               env={"NETFRONTIER_PROFILES": str(tree / "profiles"),
                    "NETFRONTIER_STORE": str(tree / "s.sqlite")})
    _one_error_line(proc, message)
    assert _files(tree) == before and not (tree / "profiles").exists()


def test_out_that_cannot_be_created_is_refused():
    for cmd in (("calibrate", "--name", "x"), ("validate", "--hw", "cpu-2core-fp32-eager",
                                               "--measurements", str(ZOO))):
        _one_error_line(run(*cmd, "--out", "/dev/null/sub"), "'/dev/null/sub' cannot be created")


def test_refused_fit_writes_nothing(tmp_path):
    bad = tmp_path / "stalled.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in stalled_every_other(quick(records()))))
    out = tmp_path / "out"
    proc = run("calibrate", "--name", "q", "--refit", str(bad), "--onchip-mb", "32",
               "--out", str(out))
    _one_error_line(proc, "calibration refused: the fitted profile misses its own")
    assert _files(out) == []


def test_calibrate_writes_a_user_profile_that_hw_finds_by_name(tmp_path):
    env = {"NETFRONTIER_PROFILES": str(tmp_path / "profiles")}
    proc = run("calibrate", "--name", "my-cpu", "--refit", str(RAW), "--onchip-mb", "32", env=env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "profiles" / "my-cpu.yaml").is_file()
    assert (tmp_path / "profiles" / "my-cpu.calibration.jsonl").is_file()
    shown = run("hw", "show", "my-cpu", env=env)
    assert shown.returncode == 0 and "calibrated profile" in shown.stdout, shown.stderr
