"""Turn a meta-device model into a runnable one with random weights, fast and numerically sane.

Latency does not depend on weight values, but it does on their numerics: uninitialised memory
can hold NaNs or denormals that send CPU kernels down slow paths, so every tensor is filled with
fan-in-scaled normals and batch-norm statistics are set to the identity.
"""
from __future__ import annotations

import math

import torch


def materialize(model: torch.nn.Module, device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.nn.Module:
    """Allocate `model`'s meta parameters and buffers on `device` and fill them with random values."""
    torch.manual_seed(seed)
    buffers = {n: b for n, b in model.named_buffers() if b.device.type != "meta"}
    model = model.to_empty(device=device)
    with torch.no_grad():
        for name, b in model.named_buffers():
            if name in buffers:  # computed at construction (indices, statistics): keep values
                b.copy_(buffers[name].to(b.device))
            if name.endswith("running_var"):
                b.fill_(1.0)
            elif name.endswith("running_mean") or name not in buffers:
                b.zero_()
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.normal_(0.0, 1.0 / math.sqrt(math.prod(p.shape[1:])))
            elif name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()
    return model.to(device=device, dtype=dtype).eval()
