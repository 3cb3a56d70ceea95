"""Property tests of the hardware YAML loader: thousands of mutated presets, in seconds.

Every mutated input is either accepted, and then costs come out finite and non-negative on
graphs that exercise the MAC array, the vector unit, host fallback and the calibrated runtimes,
or it is rejected with one NetfrontierError line naming the file. No other exception escapes.
A sample of rejected inputs also goes through the real command (exit 2, one stderr line).
"""
from __future__ import annotations

import copy
import functools
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from _tiny import tiny_cnn
from netfrontier.cost.analytical import estimate
from netfrontier.errors import NetfrontierError
from netfrontier.hardware.checks import parse_yaml
from netfrontier.hardware.registry import PRESET_DIR, preset_names
from netfrontier.hardware.spec import spec_from_dict

PRESETS = {n: yaml.safe_load((PRESET_DIR / f"{n}.yaml").read_text()) for n in preset_names()}
NASTY = [None, True, 0, -1, -0.0, 1e-300, 1e300, float("nan"), float("inf"), float("-inf"),
         "", "x", "1e9", "-.inf", [], [1, 2], [[1, 2]], [[1, 2, 3]], {}, {"a": 1}, 2**70, 3.5]
SCALES = [-1.0, 0.0, 1e-12, 1e-3, 1e3, 1e12]


class _Block(nn.Module):
    """Layer norm, attention, GELU and softmax: what fixed-function chips send to the host."""

    def __init__(self, d: int = 16):
        super().__init__()
        self.norm, self.qkv, self.out = nn.LayerNorm(d), nn.Linear(d, 3 * d), nn.Linear(d, 4)

    def forward(self, x):
        t = x.flatten(2).transpose(1, 2)
        q, k, v = self.qkv(self.norm(t)).chunk(3, dim=-1)
        a = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.out(nn.functional.gelu(a)).softmax(-1)


@functools.lru_cache(maxsize=1)
def graphs():
    from netfrontier.graph.torch_capture import capture_module

    return [capture_module(tiny_cnn(), (1, 3, 12, 12), model_name="tiny_cnn"),
            capture_module(nn.Sequential(nn.Conv2d(3, 16, 4, stride=4), _Block()),
                           (2, 3, 16, 16), model_name="tiny_block")]


def _paths(d, prefix=()):
    """Every key path in a nested mapping (lists of knots count as leaves)."""
    out = []
    for k, v in d.items():
        out.append(prefix + (k,))
        if isinstance(v, dict):
            out += _paths(v, prefix + (k,))
    return out


def mutate(d: dict, ops) -> dict:
    """Apply (path index, operation, argument) triples to a copy of a preset mapping."""
    d = copy.deepcopy(d)
    for where, op, arg in ops:
        arg = copy.deepcopy(arg)  # NASTY's dicts and lists are shared: never nest one in itself
        paths = _paths(d)
        if not paths:
            break
        path = paths[where % len(paths)]
        parent = functools.reduce(lambda a, k: a[k], path[:-1], d)
        key = path[-1]
        if op == "delete":
            del parent[key]
        elif op == "set":
            parent[key] = arg
        elif op == "scale" and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                   for v in (parent[key], arg)):
            parent[key] = parent[key] * arg
        elif op == "add":
            parent[f"{key}_extra"] = arg
        elif op == "knot" and isinstance(parent[key], list) and parent[key]:
            parent[key] = parent[key][::-1] if arg is None else parent[key] + [arg]
    return d


def check_costs(spec) -> None:
    for g in graphs():
        try:
            table = estimate(g, spec)
        except NetfrontierError:
            continue  # e.g. default bit depths the mutated chip cannot compute at
        for col in ("latency_s", "dram_bytes", "energy_j", "compute_s", "memory_s"):
            v = np.asarray(table.columns[col], float)
            assert np.isfinite(v).all() and (v >= 0).all(), (col, v)
        assert np.isfinite(table.latency_s) and table.latency_s > 0


def accepted_or_one_error(load) -> str | None:
    """None when accepted (costs checked), else the error line."""
    try:
        spec = load()
    except NetfrontierError as exc:
        msg = str(exc)
        assert msg.strip() and "\n" not in msg, msg
        return msg
    check_costs(spec)
    return None


_op = st.tuples(st.integers(0, 400),
                st.sampled_from(["delete", "set", "set", "scale", "add", "knot"]),
                st.one_of(st.sampled_from(NASTY), st.sampled_from(SCALES),
                          st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False),
                          st.integers(-10**6, 10**6), st.text(max_size=6)))


@settings(max_examples=1500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(PRESETS)), st.lists(_op, min_size=1, max_size=3))
def test_mutated_presets_are_costed_or_rejected_in_one_line(name, ops):
    d = mutate(PRESETS[name], ops)
    msg = accepted_or_one_error(lambda: spec_from_dict(d, "mut.yaml"))
    assert msg is None or msg.startswith("mut.yaml: "), msg


SHORT = sorted(n for n, d in PRESETS.items() if "calibration" not in d)  # fast to re-parse
_YAML_CHARS = ":-[]{},#&*!|>'\"%@`\n\t .0123456789eEinfa"


@settings(max_examples=1000, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SHORT),
       st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(["ins", "del", "rep"]),
                          st.sampled_from(_YAML_CHARS)), min_size=1, max_size=4))
def test_mutated_yaml_text_is_costed_or_rejected_in_one_line(name, edits):
    text = (PRESET_DIR / f"{name}.yaml").read_text()
    for pos, op, ch in edits:
        i = pos % (len(text) + 1)
        text = text[:i] + ch + text[i:] if op == "ins" else \
            text[:i] + text[i + 1:] if op == "del" else text[:i] + ch + text[i + 1:]
    msg = accepted_or_one_error(lambda: spec_from_dict(parse_yaml(text, "mut.yaml"), "mut.yaml"))
    assert msg is None or msg.startswith("mut.yaml: "), msg


def rejected_samples(n: int, seed: int = 0) -> list[tuple[dict, str]]:
    """n mutated presets the loader rejects, drawn from a fixed seed, with their messages."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        name = rng.choice(sorted(PRESETS))
        ops = [(rng.randrange(400), rng.choice(["delete", "set", "scale", "add"]),
                rng.choice(NASTY + SCALES)) for _ in range(rng.randint(1, 2))]
        d = mutate(PRESETS[name], ops)
        try:
            spec_from_dict(d, "x")
        except NetfrontierError as exc:
            out.append((d, str(exc).split(": ", 1)[1]))
    return out


@pytest.mark.parametrize("i", range(6))
def test_rejected_presets_through_the_command_exit_2_with_one_line(i, tmp_path):
    d, message = rejected_samples(6)[i]
    path = tmp_path / "chip.yaml"
    try:
        path.write_text(yaml.safe_dump(d))
    except (ValueError, yaml.YAMLError):
        pytest.skip("not representable as YAML")
    proc = subprocess.run([sys.executable, "-c", "from netfrontier.cli import main; main()",
                           "hw", "show", str(path)], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and str(path) in lines[0], lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


torch.set_num_threads(1)
