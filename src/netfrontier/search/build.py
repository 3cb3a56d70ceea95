"""Candidates become real networks.

EfficientNet-Lite candidates (`build_lite`): the parent is built for the candidate's input
resolution (its "same" paddings are static, computed for the image size) and its pretrained
weights are loaded; stages with a 3×3 choice get every depthwise 5×5 kernel replaced by its
centre 3×3 (the same output centre at stride 1 and 2); blocks are dropped from the end of
each stage (the first, which changes width and stride, stays; the dropped ones are residual);
then the expanded channels of each block are pruned by `compress.prune.Pruner` on its
Torch-Pruning group (expand conv, its batch norms, the depthwise conv and the projection's
inputs), least important (L1) first, with the removed channels' mean contribution folded into
the projection's bias (`means_from`: calibration images). `shape_lite` returns the same
shapes on the meta device, from a cached pruner of the unchanged parent, for the cost model.

Conv-net candidates (`build_convnet`): three stages of a plain k×k convolution or a
depthwise k×k + pointwise 1×1 pair (batch norm, ReLU), stride 2 at the start of stages 1 and
2, global average pooling and a linear classifier; fully convolutional, so it is trained at
28 px and costed at the deployment resolution.
"""
from __future__ import annotations

import copy
import math
from functools import lru_cache

import torch
from torch import nn

from netfrontier.compress.prune import Plan, Pruner, lowest
from netfrontier.search.space import Candidate, lite_layout


def _arch(parent: str) -> str:
    from netfrontier.models.efficientnet_lite import VARIANTS

    return VARIANTS[parent][0]


def kept_channels(expanded: int, fraction: float, quantum: int) -> int:
    """Expanded channels kept: `fraction` of them, to a multiple of `quantum` (at least one)."""
    if fraction >= 1:
        return expanded
    return max(quantum, int(round(expanded * fraction / quantum)) * quantum) \
        if expanded > quantum else expanded


def _block_sizes(parent: str, resolution: int) -> list[int]:
    """Input image size of every block of the unchanged parent."""
    size = math.ceil(resolution / 2)
    out = []
    for blocks in lite_layout(parent):
        for _, _, stride in blocks:
            out.append(size)
            size = math.ceil(size / stride)
    return out


def _crop_kernels(model: nn.Module, c: Candidate, resolution: int) -> None:
    """Stages set to 3×3: each depthwise 5×5 becomes its centre 3×3 (padding recomputed)."""
    from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding

    p = c.p
    sizes = _block_sizes(p["parent"], resolution)
    i = 0
    for s, blocks in enumerate(lite_layout(p["parent"])):
        for _ in blocks:
            if p.get(f"k{s}") == 3:
                blk = model._blocks[i]
                old = blk._depthwise_conv
                if old.kernel_size[0] == 5:
                    dev = old.weight.device
                    with torch.device("meta" if dev.type == "meta" else "cpu"):
                        new = Conv2dStaticSamePadding(old.in_channels, old.out_channels, 3,
                                                      stride=old.stride, groups=old.groups,
                                                      bias=False, image_size=sizes[i])
                    if dev.type != "meta":
                        with torch.no_grad():
                            new.weight.copy_(old.weight[:, :, 1:4, 1:4])
                    blk._depthwise_conv = new
                    blk._block_args = blk._block_args._replace(kernel_size=3)
            i += 1


def _drop_blocks(model: nn.Module, c: Candidate) -> list[int]:
    """Keep the first n blocks of each stage; returns the original indices kept."""
    p = c.p
    keep, i = [], 0
    for s, blocks in enumerate(lite_layout(p["parent"])):
        keep += [i + j for j in range(p[f"n{s}"])]
        i += len(blocks)
    model._blocks = nn.ModuleList([model._blocks[j] for j in keep])
    return keep


def _width_plan(c: Candidate, kept: list[int], scores: dict, quantum: int,
                index_of=lambda new, orig: new) -> Plan:
    """The Plan removing each kept block's least important expanded channels."""
    p = c.p
    flat = [(s, j, blk) for s, blocks in enumerate(lite_layout(p["parent"]))
            for j, blk in enumerate(blocks)]
    remove = {}
    for new, orig in enumerate(kept):
        s, j, (exp, _, _) = flat[orig]
        w = p.get(f"w{s}_{j}", 1.0)
        if not exp or w >= 1:
            continue
        root = f"_blocks.{index_of(new, orig)}._depthwise_conv"
        n = exp - kept_channels(exp, w, quantum)
        if n > 0:
            remove[root] = lowest(scores[root], n)
    return Plan(remove)


def layer_wbits(c: Candidate) -> dict[str, int]:
    """Per-module weight bits of the built network (stem, head and classifier stay 8-bit)."""
    p = c.p
    out = {}
    if c.family == "convnet":
        return {f"stages.{s}": p[f"b{s}"] for s in range(3) if p[f"b{s}"] != 8}
    i = 0
    for s in range(len(lite_layout(p["parent"]))):
        for _ in range(p[f"n{s}"]):
            if p[f"b{s}"] != 8:
                out[f"_blocks.{i}"] = p[f"b{s}"]
            i += 1
    return out


def load_parent(parent: str, resolution: int, weights: bool = True) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    from netfrontier.models.efficientnet_lite import weights_path

    model = EfficientNet.from_name(_arch(parent), image_size=resolution)
    if weights:
        state = torch.load(weights_path(parent), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    return model.eval()


def build_lite(c: Candidate, quantum: int = 8, means_from=None) -> nn.Module:
    """The candidate as a runnable network with the parent's (cropped, pruned) weights.

    `means_from`: an iterable of normalised image batches at the candidate's resolution, for
    folding the removed channels' mean contribution (None: no folding)."""
    p = c.p
    res = p["resolution"]
    model = load_parent(p["parent"], res)
    _crop_kernels(model, c, res)
    kept = _drop_blocks(model, c)
    if all(p.get(k, 1.0) >= 1 for k in p if k.startswith("w")):
        return model.eval()
    pruner = Pruner(model, torch.zeros(1, 3, res, res))
    scores = pruner.importance("l1")
    plan = _width_plan(c, kept, scores, quantum)
    means = pruner.consumer_means(means_from) if means_from is not None else None
    return pruner.apply(plan, means).eval()


@lru_cache(maxsize=16)
def _shape_pruner(parent: str, resolution: int) -> tuple[Pruner, dict]:
    torch.manual_seed(0)
    model = load_parent(parent, resolution, weights=False)
    pr = Pruner(model, torch.zeros(1, 3, resolution, resolution))
    return pr, pr.importance("l1")


def shape_lite(c: Candidate, quantum: int = 8) -> nn.Module:
    """A meta-device network with the candidate's exact shapes (no weights): for costing."""
    p = c.p
    pr, scores = _shape_pruner(p["parent"], p["resolution"])
    kept = []
    i = 0
    for s, blocks in enumerate(lite_layout(p["parent"])):
        kept += [i + j for j in range(p[f"n{s}"])]
        i += len(blocks)
    # widths on the unchanged parent (original block indices), then crop and drop on the twin
    plan = _width_plan(c, kept, scores, quantum, index_of=lambda new, orig: orig)
    twin = pr.shape_copy(plan)
    _crop_kernels(twin, c, p["resolution"])
    _drop_blocks(twin, c)
    return twin


class ConvNet(nn.Module):
    """The from-scratch family (see the module doc)."""

    def __init__(self, c: Candidate, in_channels: int = 1, classes: int = 10):
        super().__init__()
        p = c.p
        stages, ch = [], in_channels
        for s in range(3):
            blocks = []
            for b in range(p[f"d{s}"]):
                stride = 2 if (s > 0 and b == 0) else 1
                k, out = p[f"k{s}"], p[f"c{s}"]
                if p[f"o{s}"] == "dwsep" and ch > 1:
                    blocks.append(nn.Sequential(
                        nn.Conv2d(ch, ch, k, stride, k // 2, groups=ch, bias=False),
                        nn.BatchNorm2d(ch), nn.ReLU(inplace=True),
                        nn.Conv2d(ch, out, 1, bias=False), nn.BatchNorm2d(out),
                        nn.ReLU(inplace=True)))
                else:
                    blocks.append(nn.Sequential(nn.Conv2d(ch, out, k, stride, k // 2, bias=False),
                                                nn.BatchNorm2d(out), nn.ReLU(inplace=True)))
                ch = out
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.stages(x)), 1))


def build_convnet(c: Candidate, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return ConvNet(c)


def shape_model(c: Candidate, quantum: int = 8) -> nn.Module:
    if c.family == "convnet":
        with torch.device("meta"):
            return ConvNet(c)
    return shape_lite(c, quantum)


def input_shape(c: Candidate, deploy_resolution: int = 112) -> tuple[int, int, int, int]:
    if c.family == "convnet":
        return (1, 1, deploy_resolution, deploy_resolution)
    r = c.p["resolution"]
    return (1, 3, r, r)


def copy_model(m: nn.Module) -> nn.Module:
    return copy.deepcopy(m)
