"""The calibration suite: single operators across the shapes real networks use.

Each case is a tiny module and an input shape. The case is captured with the same capture as a
whole network, so its rows carry exactly the kinds and loop dimensions the cost model will see;
then it is timed on the device. Only these cases are used to fit a profile, never the zoo.

A single small op cannot be timed on its own: one call costs the runtime's fixed per-call time
(about 15 µs for a CUDA-graph launch, more in eager PyTorch), which hides a kernel of a few µs.
So every single-op case also runs as `rep16_…`: the same op 16 times in one call (on the same
input, bias-free convolutions as networks use them). The extra time per repeat is the op's own
cost: its kernel time under CUDA graphs, its host or kernel time (whichever is longer) in eager
mode. `viewchain…` and `modchain…` time metadata-only ops and module calls in the same way.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class Case:
    """One micro-benchmark: a name, its module and its input shape."""

    name: str
    kind: str
    module: nn.Module
    shape: tuple[int, ...]


class _Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class _Attention(nn.Module):
    def __init__(self, heads: int):
        super().__init__()
        self.heads = heads

    def forward(self, x):  # x: (B, L, heads * 64)
        b, n, d = x.shape
        q = x.view(b, n, self.heads, d // self.heads).transpose(1, 2)
        return F.scaled_dot_product_attention(q, q, q)


class _BatchedMatmul(nn.Module):
    def forward(self, x):  # (B, H, L, E) x (B, H, E, L)
        return x @ x.transpose(-1, -2)


class _Repeat(nn.Module):
    """The same op `times` times on the same input; the output of the last call is returned."""

    def __init__(self, inner: nn.Module, times: int):
        super().__init__()
        self.inner = inner
        self.times = times

    def forward(self, x):
        for _ in range(self.times):
            y = self.inner(x)
        return y


class _Broadcast(nn.Module):
    """x * s with s of shape (B, C, 1, 1): the scaling of a squeeze-and-excitation block."""

    def forward(self, x):
        return x * x[:, :, :1, :1]


def _conv_cases(batch: int) -> list[Case]:
    cases = []
    # (channels in, channels out, spatial, kernel, stride): the shapes of ResNet/RegNet/VGG stages
    dense = [(3, 32, 224, 3, 2), (3, 64, 224, 7, 2), (16, 16, 112, 3, 1), (32, 64, 112, 1, 1),
             (64, 64, 56, 3, 1), (64, 256, 56, 1, 1), (256, 64, 56, 1, 1), (128, 128, 28, 3, 1),
             (128, 512, 28, 1, 1), (512, 128, 28, 1, 1), (256, 256, 14, 3, 1),
             (256, 1024, 14, 1, 1), (1024, 256, 14, 1, 1), (512, 512, 7, 3, 1),
             (512, 2048, 7, 1, 1), (2048, 512, 7, 1, 1), (64, 128, 56, 3, 2), (24, 144, 56, 1, 1),
             (144, 24, 56, 1, 1), (40, 240, 28, 1, 1), (96, 576, 14, 1, 1), (320, 1280, 7, 1, 1),
             (64, 64, 112, 3, 1), (128, 128, 56, 3, 1), (256, 256, 28, 3, 1), (512, 512, 14, 3, 1),
             (768, 768, 14, 1, 1), (1024, 1024, 7, 3, 1), (96, 96, 56, 7, 1), (32, 96, 128, 3, 1)]
    for cin, cout, hw, k, s in dense:
        cases.append(Case(f"conv{k}x{k}_s{s}_{cin}x{cout}@{hw}_b{batch}", "conv",
                          nn.Conv2d(cin, cout, k, s, k // 2), (batch, cin, hw, hw)))
    for ch, hw, k, s in [(32, 112, 3, 1), (96, 112, 3, 2), (144, 56, 3, 1), (240, 28, 5, 1),
                         (480, 14, 3, 1), (672, 14, 5, 1), (960, 7, 3, 1), (1152, 7, 5, 1),
                         (64, 56, 7, 1), (384, 14, 7, 1), (768, 7, 7, 1), (128, 28, 3, 2)]:
        cases.append(Case(f"dwconv{k}x{k}_s{s}_{ch}@{hw}_b{batch}", "depthwise_conv",
                          nn.Conv2d(ch, ch, k, s, k // 2, groups=ch), (batch, ch, hw, hw)))
    for ch, hw, g in [(128, 56, 32), (256, 28, 32), (512, 14, 32), (1024, 7, 32), (224, 56, 2),
                      (448, 28, 4), (896, 14, 8), (2016, 7, 18), (168, 56, 7), (408, 28, 17),
                      (912, 14, 38), (256, 56, 2), (512, 28, 4), (2048, 7, 16), (48, 112, 6),
                      (1232, 14, 11), (3024, 7, 27)]:
        cases.append(Case(f"gconv3x3_{ch}g{g}@{hw}_b{batch}", "grouped_conv",
                          nn.Conv2d(ch, ch, 3, 1, 1, groups=g), (batch, ch, hw, hw)))
    return cases


def _matmul_cases(batch: int) -> list[Case]:
    cases = []
    for tokens, din, dout in [(1, 512, 1000), (1, 2048, 1000), (1, 4096, 4096), (1, 25088, 4096),
                              (50, 768, 768), (50, 768, 3072), (197, 768, 2304), (197, 768, 768),
                              (197, 3072, 768), (197, 1024, 4096), (257, 1280, 5120),
                              (49, 96, 288), (3136, 96, 384), (784, 192, 768), (196, 384, 1536),
                              (49, 768, 3072), (577, 768, 3072)]:
        cases.append(Case(f"linear_{tokens}x{din}x{dout}_b{batch}", "matmul",
                          nn.Linear(din, dout), (batch, tokens, din)))
    for heads, tokens in [(12, 197), (12, 50), (16, 197), (16, 577), (12, 577), (16, 1025)]:
        cases.append(Case(f"attention_{heads}h_{tokens}_b{batch}", "attention",
                          _Attention(heads), (batch, tokens, heads * 64)))
    for heads, tokens, e in [(3, 49, 32), (12, 49, 32), (24, 49, 32), (12, 197, 64)]:
        cases.append(Case(f"bmm_{heads}h_{tokens}x{e}_b{batch}", "matmul", _BatchedMatmul(),
                          (batch, heads, tokens, e)))
    return cases


def _window_bmm_cases(batch: int) -> list[Case]:
    """Window attention's batched matmuls: (batch × windows) × heads products of 49×32."""
    cases = []
    for windows, heads in [(64, 3), (16, 6), (4, 12), (64, 4)]:
        cases.append(Case(f"bmm_w{windows}x{heads}h_49x32_b{batch}", "matmul", _BatchedMatmul(),
                          (batch * windows, heads, 49, 32)))
    return cases


def _vector_cases(batch: int) -> list[Case]:
    cases = []
    shapes = [(16, 112), (64, 56), (256, 56), (128, 28), (512, 28), (1024, 14), (2048, 7),
              (96, 112), (32, 8)]
    unary = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu, "sigmoid": torch.sigmoid,
             "hardswish": F.hardswish, "add": lambda x: x + x, "mul": lambda x: x * x}
    for (ch, hw), (name, fn) in itertools.product(shapes, unary.items()):
        cases.append(Case(f"{name}_{ch}@{hw}_b{batch}", name, _Fn(fn), (batch, ch, hw, hw)))
    for ch, hw in shapes:
        cases.append(Case(f"batchnorm_{ch}@{hw}_b{batch}", "batchnorm", nn.BatchNorm2d(ch),
                          (batch, ch, hw, hw)))
        cases.append(Case(f"maxpool_{ch}@{hw}_b{batch}", "maxpool", nn.MaxPool2d(3, 2, 1),
                          (batch, ch, hw, hw)))
        cases.append(Case(f"gap_{ch}@{hw}_b{batch}", "reduce", nn.AdaptiveAvgPool2d(1),
                          (batch, ch, hw, hw)))
        cases.append(Case(f"copy_{ch}@{hw}_b{batch}", "copy",
                          _Fn(lambda x: x.transpose(2, 3).contiguous()), (batch, ch, hw, hw)))
        cases.append(Case(f"concat_{ch}@{hw}_b{batch}", "concat",
                          _Fn(lambda x: torch.cat([x, x], 1)), (batch, ch, hw, hw)))
    for tokens, dim in [(50, 768), (197, 768), (197, 1024), (577, 768), (3136, 96), (49, 768),
                        (257, 1280), (1025, 1024)]:
        cases.append(Case(f"layernorm_{tokens}x{dim}_b{batch}", "layernorm", nn.LayerNorm(dim),
                          (batch, tokens, dim)))
        cases.append(Case(f"gelu_tok_{tokens}x{dim}_b{batch}", "gelu", _Fn(F.gelu),
                          (batch, tokens, dim)))
        cases.append(Case(f"add_tok_{tokens}x{dim}_b{batch}", "add", _Fn(lambda x: x + x),
                          (batch, tokens, dim)))
    for heads, tokens in [(3, 49), (12, 197), (16, 577), (4, 64)]:
        cases.append(Case(f"softmax_{heads}h_{tokens}_b{batch}", "softmax",
                          _Fn(lambda x: x.softmax(-1)), (batch, heads, tokens, tokens)))
    return cases


class _Chain(nn.Module):
    """`length` applications of `op` in a row (ReLU kernels, or metadata-only transposes)."""

    def __init__(self, length: int, op=F.relu):
        super().__init__()
        self.length = length
        self.op = op

    def forward(self, x):
        for _ in range(self.length):
            x = self.op(x)
        return x


def _chain_cases(batch: int) -> list[Case]:
    """k tiny ops in a row: the slope is the cost per op, the intercept the cost per call."""
    return [Case(f"chain{k}_b{batch}", "chain", _Chain(k), (batch, 16, 8, 8))
            for k in (1, 2, 4, 8, 16, 32, 64)]


def _extra_cases(batch: int) -> list[Case]:
    """Kinds networks use that the cases above lack: pooling, padding, rolls, norms, broadcasts."""
    cases = []
    for ch, hw in [(64, 56), (192, 28), (768, 17), (256, 8)]:
        cases.append(Case(f"avgpool3x3_{ch}@{hw}_b{batch}", "avgpool",
                          nn.AvgPool2d(3, 1, 1), (batch, ch, hw, hw)))
        cases.append(Case(f"avgpool2x2_{ch}@{hw}_b{batch}", "avgpool", nn.AvgPool2d(2, 2),
                          (batch, ch, hw, hw)))
        cases.append(Case(f"semul_{ch}@{hw}_b{batch}", "mul", _Broadcast(), (batch, ch, hw, hw)))
        cases.append(Case(f"hardsigmoid_{ch}@{hw}_b{batch}", "hardsigmoid",
                          _Fn(F.hardsigmoid), (batch, ch, hw, hw)))
        cases.append(Case(f"pad_{ch}@{hw}_b{batch}", "pad", _Fn(lambda x: F.pad(x, (0, 1, 0, 1))),
                          (batch, ch, hw, hw)))
    for tokens, dim in [(3136, 96), (784, 192), (196, 384), (49, 768)]:
        side = int(tokens ** 0.5)
        cases.append(Case(f"roll_{side}x{side}x{dim}_b{batch}", "copy",
                          _Fn(lambda x: torch.roll(x, (-3, -3), (1, 2))),
                          (batch, side, side, dim)))
        cases.append(Case(f"normalize_{tokens}x{dim}_b{batch}", "reduce",
                          _Fn(lambda x: F.normalize(x, dim=-1)), (batch, tokens, dim)))
    return cases


def _grouped_sweep(batch: int) -> list[Case]:
    """Grouped 3×3 convs over the group widths RegNet and ResNeXt use (8 to 264 channels per
    group), at stage-like sizes and with stride 2: cuDNN switches kernels with the width."""
    cases = []
    for cpg, groups in [(8, 13), (16, 10), (24, 14), (32, 32), (48, 9), (56, 8), (64, 32),
                        (112, 11), (120, 6), (168, 8), (232, 6), (264, 4)]:
        ch = cpg * groups
        for hw, stride in [(28, 1), (14, 1), (56, 2)]:
            if ch >= 2048 and hw == 56:
                hw = 28
            cases.append(Case(f"gsweep3x3_s{stride}_{ch}g{groups}@{hw}_b{batch}", "grouped_conv",
                              nn.Conv2d(ch, ch, 3, stride, 1, groups=groups, bias=False),
                              (batch, ch, hw, hw)))
    return cases


class _Block(nn.Module):
    """A few different ops in a row, as in a network's block (host cost of a mixed sequence)."""

    def __init__(self, kind: str, ch: int):
        super().__init__()
        self.kind = kind
        if kind == "resnet":
            self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch),
                                      nn.ReLU(inplace=True), nn.Conv2d(ch, ch, 3, 1, 1, bias=False),
                                      nn.BatchNorm2d(ch))
        elif kind == "mbconv":
            e = ch * 6
            self.body = nn.Sequential(nn.Conv2d(ch, e, 1, bias=False), nn.BatchNorm2d(e),
                                      nn.ReLU6(inplace=True),
                                      nn.Conv2d(e, e, 3, 1, 1, groups=e, bias=False),
                                      nn.BatchNorm2d(e), nn.ReLU6(inplace=True),
                                      nn.Conv2d(e, ch, 1, bias=False), nn.BatchNorm2d(ch))
        else:  # "mlp": a transformer MLP with its norm
            self.body = nn.Sequential(nn.LayerNorm(ch), nn.Linear(ch, 4 * ch), nn.GELU(),
                                      nn.Linear(4 * ch, ch))

    def forward(self, x):
        y = self.body(x) + x
        return y.relu_() if self.kind == "resnet" else y


def _block_cases(batch: int) -> list[Case]:
    """Four blocks of a kind in one call: their time against the per-op figures."""
    cases = []
    for kind, ch, shape in [("resnet", 64, (batch, 64, 56, 56)), ("resnet", 256, (batch, 256, 14, 14)),
                            ("mbconv", 24, (batch, 24, 56, 56)), ("mbconv", 80, (batch, 80, 14, 14)),
                            ("mlp", 384, (batch, 196, 384)), ("mlp", 768, (batch, 49, 768))]:
        cases.append(Case(f"block4_{kind}_{ch}_b{batch}", "block",
                          nn.Sequential(*[_Block(kind, ch) for _ in range(4)]), shape))
    return cases


class _WindowPartition(nn.Module):
    """Swin's window partition: (B, H, W, C) into 7×7 windows, a copy with C contiguous."""

    def forward(self, x):
        b, h, w, c = x.shape
        x = x.view(b, h // 7, 7, w // 7, 7, c).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(-1, 49, c)


class _ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle of two groups (view, transpose, contiguous copy)."""

    def forward(self, x):
        b, c, h, w = x.shape
        return x.view(b, 2, c // 2, h, w).transpose(1, 2).contiguous().view(b, c, h, w)


def _layout_cases(batch: int) -> list[Case]:
    """Copies with the access patterns networks use, and convolution shapes off the ResNet
    grid (11×11 stride 4, 5×5, 1×7 and 7×1 as in AlexNet, GoogLeNet and Inception)."""
    cases = []
    for side, ch in [(56, 128), (28, 256), (14, 512), (14, 1024)]:
        cases.append(Case(f"winpart_{side}x{side}x{ch}_b{batch}", "copy", _WindowPartition(),
                          (batch, side, side, ch)))
    for ch, hw in [(116, 28), (232, 14), (464, 7), (244, 28)]:
        cases.append(Case(f"chshuffle_{ch}@{hw}_b{batch}", "copy", _ChannelShuffle(),
                          (batch, ch, hw, hw)))
    for cin, cout, hw, k, s, pad in [(3, 64, 224, (11, 11), 4, 2), (64, 192, 27, (5, 5), 1, 2),
                                     (32, 64, 28, (5, 5), 1, 2), (128, 192, 17, (1, 7), 1, (0, 3)),
                                     (128, 128, 17, (7, 1), 1, (3, 0))]:
        name = f"conv{k[0]}x{k[1]}_s{s}_{cin}x{cout}@{hw}_b{batch}"
        cases.append(Case(name, "conv", nn.Conv2d(cin, cout, k, s, pad, bias=False),
                          (batch, cin, hw, hw)))
    return cases


def _size_range_cases(batch: int) -> list[Case]:
    """The small and the large ends of what networks run at batch 1: squeeze-and-excitation
    pieces (1×1 convolutions, activations and the broadcast scaling on 1×1 maps), late-stage
    mobile layers at 7×7 and 14×14, and element-wise ops and norms on the 224×224 and
    112×112 maps of VGG and ConvNeXt-sized stems (larger than a CPU's L2, near its L3)."""
    cases = []
    for cin, cout in [(16, 8), (64, 16), (240, 64), (576, 144), (1152, 48), (2304, 96)]:
        cases.append(Case(f"seconv1x1_{cin}x{cout}_b{batch}", "conv", nn.Conv2d(cin, cout, 1),
                          (batch, cin, 1, 1)))
    for cin, cout, hw in [(16, 16, 56), (24, 72, 28), (48, 288, 7), (96, 576, 7), (160, 960, 7)]:
        cases.append(Case(f"conv1x1_s1_{cin}x{cout}@{hw}_b{batch}", "conv",
                          nn.Conv2d(cin, cout, 1, bias=False), (batch, cin, hw, hw)))
    for ch, hw, k, s in [(16, 56, 3, 2), (88, 14, 3, 1), (576, 7, 3, 1), (96, 14, 5, 2),
                         (120, 28, 5, 1), (72, 28, 3, 1)]:
        cases.append(Case(f"dwconv{k}x{k}_s{s}_{ch}@{hw}_b{batch}", "depthwise_conv",
                          nn.Conv2d(ch, ch, k, s, k // 2, groups=ch, bias=False),
                          (batch, ch, hw, hw)))
    tiny = {"relu": F.relu, "sigmoid": torch.sigmoid, "hardsigmoid": F.hardsigmoid,
            "hardswish": F.hardswish, "silu": F.silu}
    for (ch, hw), (name, fn) in itertools.product([(72, 1), (576, 1), (96, 14), (576, 7)],
                                                  tiny.items()):
        cases.append(Case(f"{name}_{ch}@{hw}_b{batch}", name, _Fn(fn), (batch, ch, hw, hw)))
    for ch, hw in [(96, 14), (576, 7), (16, 56)]:
        cases.append(Case(f"semul_{ch}@{hw}_b{batch}", "mul", _Broadcast(), (batch, ch, hw, hw)))
        cases.append(Case(f"gap_{ch}@{hw}_b{batch}", "reduce", nn.AdaptiveAvgPool2d(1),
                          (batch, ch, hw, hw)))
    for ch, hw in [(64, 224), (128, 112)]:
        for name, fn in {"relu": F.relu, "add": lambda x: x + x, "gelu": F.gelu}.items():
            cases.append(Case(f"{name}_{ch}@{hw}_b{batch}", name, _Fn(fn), (batch, ch, hw, hw)))
        cases.append(Case(f"batchnorm_{ch}@{hw}_b{batch}", "batchnorm", nn.BatchNorm2d(ch),
                          (batch, ch, hw, hw)))
        cases.append(Case(f"maxpool_{ch}@{hw}_b{batch}", "maxpool", nn.MaxPool2d(2, 2),
                          (batch, ch, hw, hw)))
    for tokens, dim in [(3136, 128), (784, 512)]:
        cases.append(Case(f"layernorm_{tokens}x{dim}_b{batch}", "layernorm", nn.LayerNorm(dim),
                          (batch, tokens, dim)))
        cases.append(Case(f"gelu_tok_{tokens}x{dim * 4}_b{batch}", "gelu", _Fn(F.gelu),
                          (batch, tokens, dim * 4)))
    return cases


def _repeated(cases: list[Case], times: int = 16) -> list[Case]:
    """Each single-op case repeated `times` times in one call (convolutions without bias)."""
    out = []
    for c in cases:
        m = c.module
        if isinstance(m, nn.Conv2d):
            m = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                          groups=m.groups, bias=False)
        out.append(Case(f"rep{times}_{c.name}", c.kind, _Repeat(m, times), c.shape))
    return out


def _overhead_cases(batch: int) -> list[Case]:
    """Metadata-only ops and module calls: host time in eager mode, nothing on the device."""
    return [Case(f"viewchain{k}_b{batch}", "view", _Chain(k, lambda x: x.transpose(-1, -2)), (batch, 16, 8, 8))
            for k in (1, 16, 64)] + \
        [Case(f"modchain{k}_b{batch}", "chain", nn.Sequential(*[nn.ReLU() for _ in range(k)]),
              (batch, 16, 8, 8)) for k in (16, 64)]


def suite(batches: tuple[int, ...] = (1,), quick: bool = False,
          repeated: bool = True) -> list[Case]:
    """All calibration cases for the given batch sizes; `quick` keeps every third (for tests).

    `repeated=False` leaves out the repeated-op and overhead cases (the suite as first run).
    """
    cases = [c for b in batches
             for c in _chain_cases(b) + _conv_cases(b) + _matmul_cases(b) + _vector_cases(b)]
    if repeated:
        cases += [c for b in batches for c in _extra_cases(b)]
        cases += [c for b in batches for c in _overhead_cases(b) +
                  _repeated(_conv_cases(b) + _matmul_cases(b) + _vector_cases(b) +
                            _extra_cases(b))]
        cases += [c for b in batches for c in _grouped_sweep(b) + _repeated(_grouped_sweep(b)) +
                  _block_cases(b)]
        cases += [c for b in batches for c in _layout_cases(b) + _repeated(_layout_cases(b))]
        cases += [c for b in batches for c in _window_bmm_cases(b) +
                  _repeated(_window_bmm_cases(b))]
        cases += [c for b in batches for c in _size_range_cases(b) +
                  _repeated(_size_range_cases(b))]
    return cases[::3] if quick else cases
