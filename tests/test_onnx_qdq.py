"""QDQ ONNX export: the file is real QDQ and ONNX Runtime computes what the PyTorch simulation does."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from _tiny import randomize_bn, tiny_cnn
from netfrontier.compress.config import QuantConfig
from netfrontier.compress.onnx_export import export_qdq, onnx_parity, qdq_summary
from netfrontier.compress.ptq import quantize
from netfrontier.errors import OptionError
from netfrontier.measure.accuracy import default_data_dir

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def calib():
    g = torch.Generator().manual_seed(0)
    return [torch.randn(16, 3, 12, 12, generator=g) for _ in range(2)]


@pytest.mark.parametrize("wbits", [8, 6, 4])
def test_qdq_parity_with_pytorch(tmp_path, calib, wbits):
    torch.manual_seed(wbits)  # a fixed model: unseeded ones occasionally hit a rounding tie
    model = randomize_bn(tiny_cnn())
    q = quantize(model, QuantConfig(wbits=wbits, bias_correction=wbits < 8), calib)
    path = export_qdq(q, tmp_path / "q.onnx", calib[0][:1])
    x = torch.randn(24, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    par = onnx_parity(q, path, x)
    assert par["argmax_agreement"] == 1.0
    assert par["rel_max_diff"] < 1e-4, par
    # the float model differs from both by far more: the check can tell quantized from not
    with torch.no_grad():
        assert (model(x) - q(x)).abs().max().item() > 100 * par["max_abs_diff"]


def test_qdq_structure_and_low_bit_weights(tmp_path, calib):
    q = quantize(randomize_bn(tiny_cnn()), QuantConfig(wbits=4), calib)
    path = export_qdq(q, tmp_path / "q.onnx", calib[0][:1])
    s = qdq_summary(path)
    assert s["Conv"] == 3 and s["Gemm"] + s["MatMul"] == 1
    assert s["QuantizeLinear"] == 4  # one per layer input; weights are stored quantized
    assert s["DequantizeLinear"] == 8  # inputs and weights
    m = onnx.load(str(path))
    ints = [numpy_helper.to_array(i) for i in m.graph.initializer
            if i.data_type == onnx.TensorProto.INT8 and len(i.dims) > 1]
    assert len(ints) == 4
    ranges = sorted(int(np.abs(a).max()) for a in ints)
    assert ranges[:2] == [7, 7]  # the two 4-bit layers keep to ±7
    assert ranges[2:] == [127, 127]  # first and last at 8 bits
    dq_axis = [a.i for n in m.graph.node if n.op_type == "DequantizeLinear"
               for a in n.attribute if a.name == "axis"]
    assert dq_axis.count(0) >= 3  # per-channel weight scales (axis 0)


def test_export_refuses_what_qdq_cannot_hold(tmp_path, calib):
    model = randomize_bn(tiny_cnn())
    with pytest.raises(OptionError, match="8-bit activations"):
        export_qdq(quantize(model, QuantConfig(abits=16), calib), tmp_path / "a.onnx",
                   calib[0][:1])
    with pytest.raises(OptionError, match="at most 8 bits"):
        export_qdq(quantize(model, QuantConfig(wbits=12), calib), tmp_path / "b.onnx",
                   calib[0][:1])
    with pytest.raises(OptionError, match="no quantized layers"):
        export_qdq(model, tmp_path / "c.onnx", calib[0][:1])


@pytest.mark.slow
@pytest.mark.skipif(not default_data_dir().is_dir(), reason="imagenet-sample not present")
def test_efficientnet_lite0_qdq_parity(tmp_path):
    from netfrontier.measure.accuracy import load_images
    from netfrontier.models.pretrained import load_pretrained

    pre = load_pretrained("efficientnet_lite0")
    data = load_images(None, pre.preprocess, limit=40)
    tune, test = data.split()
    q = quantize(pre.model, QuantConfig(wbits=8), list(tune.batches(20)))
    x = next(test.batches(20))
    path = export_qdq(q, tmp_path / "lite0.onnx", x[:1])
    par = onnx_parity(q, path, x)
    # ~65 layers of re-quantization: one-step flips where float sums land on a rounding
    # boundary differently in the two runtimes, never a systematic difference
    assert par["argmax_agreement"] >= 0.9
    assert par["rel_max_diff"] < 0.05
