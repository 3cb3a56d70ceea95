"""Bad input through the real command: one `error:` line naming the culprit, exit 2, nothing
half-written, never a traceback (issue 10, item 4)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest



def nf(*args, env=None, cwd=None):
    e = dict(os.environ, COLUMNS="200", **(env or {}))
    return subprocess.run([sys.executable, "-c", "from netfrontier.cli import main; main()",
                           *map(str, args)], capture_output=True, text=True, env=e, cwd=cwd,
                          timeout=300)


def one_error(proc, *needles):
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def afile(tmp_path):
    p = tmp_path / "afile"
    p.write_text("x")
    return p


@pytest.mark.parametrize("args", [
    ("zoo", "--filter", "squeezenet1_0*", "--out", "{f}"),
    ("quantize", "mobilenet_v2", "--out", "{f}/sub"),
    ("bench", "squeezenet1_0", "--out", "{f}"),
])
def test_out_that_is_a_file_is_refused_before_any_work(args, afile, tmp_path):
    proc = nf(*[a.format(f=afile) for a in args], env={"NETFRONTIER_STORE":
                                                       str(tmp_path / "s.sqlite")})
    one_error(proc, "--out", str(afile))
    assert afile.read_text() == "x"


def test_store_that_is_not_sqlite_or_a_directory(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database at all, just text " * 20)
    one_error(nf("recommend", "--min-top1", "80", "--store", junk), "--store", "junk.sqlite",
              "not a usable SQLite store")
    one_error(nf("recommend", "--min-top1", "80", "--store", tmp_path), "is a directory")
    one_error(nf("recommend", "--min-top1", "80", env={"NETFRONTIER_STORE": str(junk)}),
              "$NETFRONTIER_STORE")
    assert junk.read_text().startswith("not a database")


@pytest.mark.parametrize("source, call, message", [
    ("def f(:\n    pass\n", "syn_mod:f", "'syn_mod' has a syntax error"),
    ("def f():\n    raise RuntimeError('no weights here')\n", "boom_mod:f",
     "boom_mod:f raised RuntimeError: no weights here"),
    ("def f(width):\n    return None\n", "arg_mod:f", "must be callable with no arguments"),
    ("raise ImportError('needs a GPU library')\n", "imp_mod:f", "cannot import 'imp_mod'"),
])
def test_factory_that_fails_is_one_line(tmp_path, source, call, message):
    (tmp_path / f"{call.split(':')[0]}.py").write_text(source)
    one_error(nf("analyze", call, env={"PYTHONPATH": str(tmp_path)}), message)


def _dataset(tmp_path, label="3", corrupt=False):
    from PIL import Image

    d = tmp_path / "data"
    (d / "images").mkdir(parents=True)
    Image.new("RGB", (40, 40), (200, 30, 30)).save(d / "images" / "a.jpg")
    if corrupt:
        (d / "images" / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (d / "labels.csv").write_text(f"file,class_index\na.jpg,{label}\n")
    return d


def test_corrupt_jpeg_names_the_file(tmp_path):
    one_error(nf("eval", "efficientnet_lite0", "--data", _dataset(tmp_path, corrupt=True)),
              "a.jpg", "cannot be decoded")


@pytest.mark.parametrize("label, message", [("5000", "class_index 5000 is outside 0-999"),
                                            ("-1", "class_index -1 is outside"),
                                            ("cat", "'cat' is not a whole number")])
def test_label_outside_imagenet_is_refused(tmp_path, label, message):
    one_error(nf("eval", "efficientnet_lite0", "--data", _dataset(tmp_path, label)),
              "labels.csv, line 2", message)


@pytest.mark.parametrize("args, message", [
    (("--min-top1", "-5"), "--min-top1 must be at least 0"),
    (("--min-top1", "nan"), "--min-top1 must be a finite number"),
    (("--min-top1", "101"), "--min-top1 must be at most 100"),
    (("--min-top1", "70", "--max-params", "-1"), "--max-params must be above 0"),
])
def test_recommend_impossible_constraints(args, message, tmp_path):
    one_error(nf("recommend", *args, "--store", tmp_path / "s.sqlite"), message)


def test_bench_on_cuda_without_cuda_is_an_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    one_error(nf("bench", "squeezenet1_0", "--device", "cuda", "--store", tmp_path / "s.sqlite"),
              "no CUDA device")


def test_eval_shows_progress_in_a_pipe(tmp_path):
    proc = nf("eval", "efficientnet_lite0", "--data", _dataset(tmp_path), "--batch-size", "1")
    assert proc.returncode == 0, proc.stderr
    assert "decoding images for efficientnet_lite0: 1/1" in proc.stderr
    assert "evaluating efficientnet_lite0: 1/1" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (("--target-latency", "-1"), "--target-latency must be above 0"),
    (("--ratio", "0.5", "--target-latency", "1"), "exactly one of --target-latency"),
    (("--ratio", "1.5"), "--ratio must be between 0 and 1"),
    (("--ratio", "0.5", "--method", "magic"), "unknown method 'magic'"),
    (("--ratio", "0.5", "--importance", "fisher"), "unknown importance 'fisher'"),
    (("--ratio", "0.5", "--hw", "tpu-v9"), "unknown hardware preset 'tpu-v9'"),
    pytest.param(("--target-latency", "0.0001", "--limit", "8"), "is below what pruning to 25%",
                 marks=pytest.mark.skipif(
                     not (Path(__file__).resolve().parents[2] / "shared" / "data" /
                          "imagenet-sample").is_dir(),
                     reason="the reachable target is measured on the imagenet sample")),
])
def test_prune_impossible_targets_are_one_line_and_write_nothing(args, message, tmp_path):
    out = tmp_path / "out"
    one_error(nf("prune", "efficientnet_lite0", *args, "--out", out), message)
    assert not out.exists() or not any(out.iterdir())
