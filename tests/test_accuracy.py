"""Accuracy measurement: data set layouts, top-1/top-5 with standard errors, pairing, loading."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from netfrontier.errors import GraphImportError, MeasurementError, OptionError, UnknownModelError
from netfrontier.measure.accuracy import (Accuracy, Preprocess, evaluate, default_data_dir,
                                          load_images, paired_difference, standard_error)

torch.set_num_threads(2)
HAVE_SAMPLE = default_data_dir().is_dir()


class ColourNet(torch.nn.Module):
    """Predicts class 0 for red-dominated images, 1 for green, 2 for blue (real pixels)."""

    def forward(self, x):
        means = x.mean(dim=(2, 3))  # N×3
        out = torch.full((x.shape[0], 10), -10.0)
        out[:, :3] = means
        return out


def _write_sample(root, colours, labels):
    (root / "images").mkdir(parents=True)
    rows = ["file,class_index,wnid,class_name"]
    for i, (c, y) in enumerate(zip(colours, labels)):
        name = f"{i:03d}_x.jpg"
        Image.new("RGB", (40, 30), c).save(root / "images" / name, quality=95)
        rows.append(f"{name},{y},nX,thing")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


def test_standard_error_formula():
    assert standard_error(85.0, 1000) == pytest.approx(100 * math.sqrt(0.85 * 0.15 / 1000))
    assert standard_error(100.0, 10) == 0.0


def test_labels_csv_layout_and_topk(tmp_path):
    colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 0, 0), (0, 250, 0), (0, 0, 250)]
    labels = [0, 1, 2, 1, 1, 0]  # images 3 and 5 are labelled against their colour
    _write_sample(tmp_path, colours, labels)
    data = load_images(tmp_path, Preprocess(24, 24))
    assert data.images.shape == (6, 3, 24, 24) and data.images.dtype == torch.uint8
    acc = evaluate(ColourNet(), data, batch_size=4)
    assert acc.n == 6 and acc.top1 == pytest.approx(100 * 4 / 6)
    assert acc.top5 == 100.0  # the right class is always among the top five
    assert acc.top1_se == pytest.approx(standard_error(acc.top1, 6))
    assert list(acc.correct1) == [True, True, True, False, True, False]
    assert len(load_images(tmp_path, Preprocess(24, 24), limit=2)) == 2


def test_imagenet_folder_layout(tmp_path):
    for wnid, c in (("n01440764", (250, 0, 0)), ("n01443537", (0, 250, 0))):
        (tmp_path / wnid).mkdir()
        Image.new("RGB", (32, 32), c).save(tmp_path / wnid / "a.JPEG")
    data = load_images(tmp_path, Preprocess(16, 16))
    assert list(data.labels) == [0, 1]  # sorted-wnid class indices
    assert evaluate(ColourNet(), data).top1 == 100.0


def test_split_is_disjoint_and_balanced(tmp_path):
    _write_sample(tmp_path, [(i * 20, 0, 0) for i in range(10)], list(range(10)))
    tune, test = load_images(tmp_path, Preprocess(8, 8)).split()
    assert set(tune.files).isdisjoint(test.files) and len(tune) == len(test) == 5


def test_paired_difference():
    a = Accuracy("d", 4, 50, 0, 0, 0, np.array([1, 1, 0, 0], bool), np.ones(4, bool))
    b = Accuracy("d", 4, 75, 0, 0, 0, np.array([1, 1, 1, 0], bool), np.ones(4, bool))
    d, se = paired_difference(a, b)
    assert d == pytest.approx(25.0)
    assert se == pytest.approx(100 * np.std([0, 0, 1, 0], ddof=1) / 2)
    with pytest.raises(MeasurementError):
        paired_difference(a, Accuracy("d", 3, 0, 0, 0, 0, np.zeros(3, bool), np.zeros(3, bool)))


def test_bad_data_inputs(tmp_path):
    with pytest.raises(MeasurementError, match="does-not-exist"):
        load_images(tmp_path / "does-not-exist")
    with pytest.raises(MeasurementError, match="labels.csv"):
        load_images(tmp_path)
    with pytest.raises(OptionError, match="--limit"):
        _write_sample(tmp_path / "s", [(0, 0, 0)], [0])
        load_images(tmp_path / "s", limit=0)


def test_checkpoint_loading_weights_only(tmp_path):
    from netfrontier.models.pretrained import load_pretrained

    fac = "torch.nn:Identity"
    with pytest.raises(UnknownModelError, match="--arch"):
        load_pretrained(str(tmp_path / "w.pt"))
    with pytest.raises(GraphImportError, match="does not exist"):
        load_pretrained(str(tmp_path / "w.pt"), arch=fac)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(GraphImportError, match="weights_only"):
        load_pretrained(str(tmp_path / "bad.pt"), arch=fac)
    torch.save({"weight": torch.ones(2)}, tmp_path / "extra.pt")
    with pytest.raises(GraphImportError, match="does not fit"):
        load_pretrained(str(tmp_path / "extra.pt"), arch=fac)


@pytest.mark.skipif(not HAVE_SAMPLE, reason="imagenet-sample not present")
def test_lite0_checkpoint_roundtrip_and_accuracy(tmp_path):
    from netfrontier.models.efficientnet_lite import weights_path
    from netfrontier.models.pretrained import load_pretrained

    pre = load_pretrained("efficientnet_lite0")
    data = load_images(None, pre.preprocess, limit=16)
    acc = evaluate(pre.model, data)
    assert acc.top1 >= 75  # ~87% on this set with the right preprocessing; chance is 0.1%
    state = torch.load(weights_path("efficientnet_lite0"), weights_only=True)
    state["_fc.bias"] = state["_fc.bias"] + 100 * torch.nn.functional.one_hot(
        torch.tensor(3), 1000)
    torch.save(state, tmp_path / "biased.pth")
    biased = load_pretrained(str(tmp_path / "biased.pth"), arch="efficientnet_lite0")
    assert evaluate(biased.model, data).top1 < 10  # the checkpoint really replaced the weights


def test_zoo_lists_efficientnet_lite_with_published_and_measured_figures():
    from netfrontier.models.efficientnet_lite import MEASURED_FILE
    from netfrontier.models.registry import resolve, zoo_entries

    src, e = resolve("efficientnet_lite0")
    assert src.name == "efficientnet_lite" and e.resolution == 224
    if not MEASURED_FILE.is_file():
        pytest.skip("benchmarks/quantization.py has not written measured_accuracy.json")
    import json

    measured = json.loads(MEASURED_FILE.read_text())["models"]
    lite = zoo_entries("efficientnet_lite*")
    assert [x.name for x in lite] == ["efficientnet_lite0", "efficientnet_lite1",
                                      "efficientnet_lite2"]
    assert [x.top1 for x in lite] == [75.1, 76.7, 77.6]  # the release's published figures
    for x in lite:
        assert x.top1_source.startswith("reference: EfficientNet-Lite release")
        assert x.extra["measured_top1"] == measured[x.name]["top1"]
        assert x.extra["measured_source"].startswith("measured: imagenet-sample")
