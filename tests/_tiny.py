"""Small real models and data for the quantization tests (no downloads, a few seconds on CPU)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from netfrontier.measure.accuracy import LabelledImages, Preprocess


def tiny_cnn(classes: int = 6) -> nn.Module:
    """conv-bn-relu6, depthwise-bn-relu6, pointwise, pool, linear: the MobileNet motifs."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
        nn.Conv2d(16, 24, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU6(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, classes))


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def blob_images(n: int, classes: int = 6, size: int = 12, seed: int = 0) -> LabelledImages:
    """A synthetic labelled set: each class a fixed random colour pattern plus heavy noise."""
    g = np.random.default_rng(seed)
    protos = g.uniform(0, 255, (classes, 3, size, size))
    labels = (np.arange(n) // 2) % classes  # both halves of split() see every class
    imgs = protos[labels] * 0.5 + g.uniform(0, 255, (n, 3, size, size)) * 0.5
    return LabelledImages("blobs", torch.from_numpy(imgs.astype(np.uint8)), labels.astype(np.int64),
                          [f"{i}.png" for i in range(n)], Preprocess(size, size))


def train_fp32(model: nn.Module, data: LabelledImages, epochs: int = 30, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        for x, y in data.batches(32, labels=True):
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


class _SE(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, 4, 1), nn.Conv2d(4, c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class _MBConv(nn.Module):
    """Expand 1x1, depthwise 3x3, squeeze-and-excitation, project 1x1, residual."""

    def __init__(self, c: int, e: int):
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(c, e, 1, bias=False), nn.BatchNorm2d(e), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(e, e, 3, padding=1, groups=e, bias=False),
                                nn.BatchNorm2d(e), nn.ReLU6())
        self.se = _SE(e)
        self.project = nn.Sequential(nn.Conv2d(e, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return x + self.project(self.se(self.dw(self.expand(x))))


class TinyMobile(nn.Module):
    """The motifs channel pruning must keep consistent: residual adds, depthwise convs,
    squeeze-and-excitation and a concatenation."""

    def __init__(self, classes: int = 6):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(16), nn.ReLU6())
        self.b1, self.b2 = _MBConv(16, 96), _MBConv(16, 128)
        self.side = nn.Sequential(nn.Conv2d(16, 24, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU())
        self.head = nn.Sequential(nn.Conv2d(40, 64, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU6())
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.b2(self.b1(self.stem(x)))
        x = self.head(torch.cat([x, self.side(x)], 1))
        return self.fc(x.mean((2, 3)))
