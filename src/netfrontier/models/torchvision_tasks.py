"""torchvision's detection, instance-segmentation, keypoint and semantic-segmentation weights.

Every weight entry of `torchvision.models.detection` and `torchvision.models.segmentation`, with
its published figures (COCO box / mask / keypoint mAP; mIoU and pixel accuracy on COCO val2017
with the VOC classes) labelled "reference", its parameter count and `_ops` (GMACs, the same
convention as the classifiers': `_ops` x 1e9 = netfrontier's MACs), at its native input size:

* R-CNN, RetinaNet, FCOS: GeneralizedRCNNTransform resizes the short side to `min_size` (800,
  or 320 for the 320 px MobileNet Faster R-CNN) with the long side at most `max_size`; a square
  input of min_size is taken as it is (scale 1) and padded to a multiple of 32;
* SSD300 / SSDlite320: the transform resizes every image to its `fixed_size` (300 / 320);
* FCN, DeepLabV3, LR-ASPP: their weights' transform resizes to 520 (`resize_size`).

The model is built exactly as torchvision builds it for the weights (class count, keypoints,
auxiliary classifier, FrozenBatchNorm2d), without downloading anything: parameters live on the
meta device. Post-processing runs at its worst case (graph/postprocess.py): the built model's
score thresholds are set to 0, so that a benchmark with random weights reaches the same caps
(proposals, candidates, detections) as the capture, which states them in `graph.meta`.
"""
from __future__ import annotations

import contextlib
from functools import lru_cache

from netfrontier.errors import OptionError
from netfrontier.models.base import CatalogueSource, ModelEntry

REFERENCE = "reference: torchvision weight metadata ({dataset})"
SIZE_DIVISIBLE = 32  # GeneralizedRCNNTransform pads images to a multiple of this
MIN_SIDE = 32  # netfrontier's floor: one cell of the backbone's stride-32 feature map


def _family(arch: str) -> str:
    if arch.startswith("ssd"):
        return "ssd"
    for fam in ("retinanet", "fcos"):
        if arch.startswith(fam):
            return fam
    if "rcnn" in arch:
        return "rcnn"
    return "segmentation"


def _max_side(arch: str) -> int | None:
    """GeneralizedRCNNTransform's max_size: a larger square input would be scaled down."""
    fam = _family(arch)
    if fam in ("ssd", "segmentation"):
        return None
    return 640 if "_320_" in arch else 1333


def _native_resolution(arch: str, weights) -> int:
    fam = _family(arch)
    if fam == "segmentation":
        return int((getattr(weights.transforms, "keywords", {}) or {})["resize_size"])
    if fam == "ssd":
        return 300 if arch.startswith("ssd300") else 320
    return 320 if "_320_" in arch else 800


@lru_cache(maxsize=1)
def _all_entries() -> tuple[ModelEntry, ...]:
    from torchvision import models

    out = []
    for task, module in (("detection", models.detection), ("segmentation", models.segmentation)):
        for arch in models.list_models(module=module):
            enum = models.get_model_weights(arch)
            default = enum.DEFAULT if hasattr(enum, "DEFAULT") else None
            for w in enum:
                (dataset, figures), = w.meta["_metrics"].items()
                out.append(ModelEntry(
                    name=f"{arch}.{w.name}", arch=arch, source="torchvision",
                    resolution=_native_resolution(arch, w), weights=w.name,
                    params=int(w.meta["num_params"]),
                    ref_macs=int(round(float(w.meta["_ops"]) * 1e9)),
                    extra={"default": w is default, "family": _family(arch),
                           "dataset": dataset, "max_side": _max_side(arch)},
                    task=task, metrics={k: float(v) for k, v in figures.items()},
                    metrics_source=REFERENCE.format(dataset=dataset),
                ))
    return tuple(out)


@contextlib.contextmanager
def _offline_build():
    """Build a model for its weights (their class count, auxiliary heads, frozen batch norm)
    without loading them, and let SSDlite's construction-time probe run on meta tensors."""
    import torch
    from torchvision.models._api import WeightsEnum
    from torchvision.models.detection import _utils as det_utils

    def probe_channels(model, size):
        from collections import OrderedDict

        state = {k: torch.empty_like(v, device="meta") for k, v in
                 list(model.named_parameters()) + list(model.named_buffers())}
        was = model.training
        model.eval()
        with torch.no_grad():
            feats = torch.func.functional_call(
                model, state, (torch.zeros((1, 3, size[1], size[0]), device="meta"),),
                strict=False)
        model.train(was)
        if isinstance(feats, torch.Tensor):
            feats = OrderedDict([("0", feats)])
        return [x.size(1) for x in feats.values()]

    orig_get, orig_load = WeightsEnum.get_state_dict, torch.nn.Module.load_state_dict
    orig_probe = det_utils.retrieve_out_channels

    def load(self, state_dict, *args, **kwargs):
        if state_dict is None:  # the weights' own state dict, not loaded
            return None
        return orig_load(self, state_dict, *args, **kwargs)

    WeightsEnum.get_state_dict = lambda self, *a, **k: None
    torch.nn.Module.load_state_dict = load
    det_utils.retrieve_out_channels = probe_channels
    try:
        yield
    finally:
        WeightsEnum.get_state_dict, torch.nn.Module.load_state_dict = orig_get, orig_load
        det_utils.retrieve_out_channels = orig_probe


def _worst_case_thresholds(model) -> None:
    """Score thresholds to 0: every cap is reached (as the capture states), also when measured
    with random weights, which would otherwise leave almost no box above threshold."""
    for obj in (model, getattr(model, "rpn", None), getattr(model, "roi_heads", None)):
        if obj is not None and hasattr(obj, "score_thresh"):
            obj.score_thresh = 0.0


def stated_counts(model) -> dict:
    """The post-processing counts a capture runs at: the model's own caps."""
    out: dict = {}
    rpn = getattr(model, "rpn", None)
    if rpn is not None:
        out["rpn_pre_nms_top_n_per_level"] = int(rpn._pre_nms_top_n["testing"])
        out["proposals"] = int(rpn._post_nms_top_n["testing"])
    heads = getattr(model, "roi_heads", None)
    if heads is not None:
        out["detections"] = int(heads.detections_per_img)
    for key in ("topk_candidates", "detections_per_img"):
        if hasattr(model, key):
            out["candidates_per_level_or_class" if key == "topk_candidates" else "detections"] = \
                int(getattr(model, key))
    if out:
        out["rule"] = ("worst case: every score passes its threshold and NMS suppresses "
                       "nothing, so each cap is reached (netfrontier.graph.postprocess)")
    return out


class TorchvisionTaskSource(CatalogueSource):
    """Names: `fasterrcnn_resnet50_fpn` (the default weights) or `..._fpn.COCO_V1`."""

    name = "torchvision_tasks"

    def catalogue(self) -> tuple[ModelEntry, ...]:
        return _all_entries()

    def build(self, entry: ModelEntry, materialize: bool = False):
        from torchvision import models

        from netfrontier.graph.torch_capture import meta_init

        weights = models.get_model_weights(entry.arch)[entry.weights]
        with contextlib.nullcontext() if materialize else meta_init(), _offline_build():
            model = models.get_model(entry.arch, weights=weights)
        _worst_case_thresholds(model)
        return model.eval()

    def check_resolution(self, entry: ModelEntry, resolution: int) -> None:
        """OptionError unless the model can take square inputs of `resolution` pixels."""
        fam = entry.extra.get("family") or _family(entry.arch)
        if resolution == entry.resolution:
            return
        if fam == "ssd":
            raise OptionError(
                f"{entry.name} takes {entry.resolution} px input only: its transform resizes "
                f"every image to {entry.resolution}x{entry.resolution} (got {resolution})")
        if resolution < MIN_SIDE:
            raise OptionError(
                f"{entry.name} cannot take {resolution} px input: it needs at least {MIN_SIDE} "
                f"px (one cell of its stride-32 feature map); native {entry.resolution}")
        if fam == "segmentation":
            return
        if resolution % SIZE_DIVISIBLE:
            raise OptionError(
                f"{entry.name} takes input sides that are multiples of {SIZE_DIVISIBLE} (its "
                f"transform pads to them), got {resolution}; native {entry.resolution}")
        top = entry.extra.get("max_side") or _max_side(entry.arch)
        if top and resolution > top:
            raise OptionError(
                f"{entry.name} cannot take {resolution} px input: its transform scales any "
                f"image down to at most {top} px (max_size); native {entry.resolution}")

    def capture(self, entry: ModelEntry, batch: int = 1, resolution: int | None = None):
        from netfrontier.graph.torch_capture import capture_module

        res = resolution or entry.resolution
        self.check_resolution(entry, res)
        model = self.build(entry)
        transform = getattr(model, "transform", None)
        if transform is not None and res != entry.resolution:
            transform.min_size = (res,)  # the transform takes the input at its own size
        meta = {"top1": None, "weights": entry.weights, "task": entry.task,
                "metrics": dict(entry.metrics), "postprocess": stated_counts(model)}
        return capture_module(model, (batch, 3, res, res), model_name=entry.name,
                              source=entry.source, meta=meta, postprocess=True)
