"""Detection post-processing on meta tensors, at a stated number of proposals and detections.

A detector's tail is data-dependent: how many boxes pass a score threshold, survive NMS or fall
on each pyramid level depends on the pixels, and meta tensors have no pixels. The capture runs
it in its **worst case, where every cap the model has is reached**:

* every score passes its threshold (`nonzero` and boolean masks select every element), and NMS
  suppresses nothing, so each count is set by the model's own limits: the RPN keeps
  `pre_nms_top_n` boxes per level and `post_nms_top_n` proposals (1000 for the R-CNNs, 150 for
  the 320 px MobileNet one), the final stage `detections_per_img` (100 R-CNN, 300 RetinaNet,
  100 FCOS, 200 SSD300, 300 SSDlite), after `topk_candidates` per level or class;
* each data-dependent step becomes one node of its own kind, costed as vector work:

  ============== =============================================================================
  anchors        anchor / default-box generation: 2 ops per output coordinate (grid shift + add)
  box_decode     BoxCoder.decode / decode_single / BoxLinearCoder.decode: the element-wise ops
                 torchvision executes, summed into one node
  select         topk, sort, nonzero (score thresholding): one op per input element
                 (sort: n·⌈log2 n⌉)
  nms            greedy NMS over n boxes keeping k: n·⌈log2 n⌉ (sort) + IOU_OPS·n·k (each box
                 against the boxes kept, an early-exit kernel; k is what the model keeps, the
                 slice of NMS's output that follows it). batched NMS uses torchvision's
                 coordinate-offset form (one NMS over all classes or levels)
  roi_align      per output element, sampling_ratio² bilinear samples of BILINEAR_OPS each + 1
                 (the average); MultiScaleRoIAlign's level mapping is assumed to send each RoI
                 to one level, so the node reads every level it pools from
  roi_pool       per output element, ROI_POOL_BIN elements compared (bins are data-dependent)
  mask_paste     paste_masks_in_image: every detection's mask written into a full image
                 (1 op per element) after a bilinear resize to its box (4 ops per box pixel)
  keypoint_decode heatmaps_to_keypoints: bicubic resize of each heatmap to its box
                 (BICUBIC_OPS per box pixel) and an argmax (1 per pixel)
  ============== =============================================================================

  Box sizes are data too: a detected box is taken to be BOX_SIDE_FRACTION of the image's width
  and height (a quarter of its area).

Everything here patches torchvision only while one capture runs (`stated_postprocessing`), and
only on meta tensors; the dispatch-level rules (nonzero, boolean indexing, torchvision::nms)
live in graph/torch_capture.py.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

IOU_OPS = 12  # one IoU: 4 min/max, 2 subtractions and clamps, areas, union and a divide
BILINEAR_OPS = 10  # 4 taps: 4 multiplies, 3 adds, 3 weight terms
BICUBIC_OPS = 32  # 16 taps, multiply and add
ROI_POOL_BIN = 4  # elements per RoIPool bin (data-dependent; stated)
BOX_SIDE_FRACTION = 0.5  # a detected box spans half the image's width and half its height
DEFAULT_SAMPLING = 2  # RoIAlign's adaptive sampling (sampling_ratio <= 0): 2 x 2 per bin


def sort_ops(n: int) -> int:
    return int(n * max(math.ceil(math.log2(max(n, 2))), 1))


def nms_ops(n: int, k: int) -> int:
    """Vector ops of greedy NMS over n boxes that keeps k of them (see the module doc)."""
    return sort_ops(n) + IOU_OPS * int(n) * int(min(k, n))


def roi_align_ops(out_elems: int, sampling_ratio: int) -> int:
    s = sampling_ratio if sampling_ratio and sampling_ratio > 0 else DEFAULT_SAMPLING
    return int(out_elems) * (s * s * BILINEAR_OPS + 1)


def roi_pool_ops(out_elems: int) -> int:
    return int(out_elems) * ROI_POOL_BIN


def box_pixels(h: int, w: int) -> int:
    """Pixels of one detected box in an h × w image (stated box size)."""
    return max(int(round(h * BOX_SIDE_FRACTION)), 1) * max(int(round(w * BOX_SIDE_FRACTION)), 1)


def _flat(obj) -> list:
    import torch

    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for x in obj for t in _flat(x)]
    if isinstance(obj, dict):
        return [t for x in obj.values() for t in _flat(x)]
    return []


@contextlib.contextmanager
def _patched(obj, name: str, new) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, new)
    try:
        yield
    finally:
        setattr(obj, name, old)


@contextlib.contextmanager
def stated_postprocessing(rec, image_hw: tuple[int, int]) -> Iterator[None]:
    """Run torchvision's detection tails on meta tensors as single nodes of the new kinds.

    `rec` is the capture's recorder (graph/torch_capture._Recorder); `image_hw` the input image
    size (keypoint boxes are sized from it)."""
    import torch
    import torch.nn.functional as F
    import torchvision.models.detection.roi_heads as roi_heads
    import torchvision.models.detection.transform as det_transform
    import torchvision.ops.boxes as box_ops
    import torchvision.ops.poolers as poolers
    from torchvision.models.detection import _utils as det_utils
    from torchvision.models.detection.anchor_utils import AnchorGenerator, DefaultBoxGenerator
    from torchvision.ops.misc import FrozenBatchNorm2d

    def on_meta(tensors) -> bool:
        return any(t.device.type == "meta" for t in tensors)

    def anchors(orig):
        def forward(self, image_list, feature_maps):
            if not on_meta(_flat(feature_maps)):
                return orig(self, image_list, feature_maps)
            with rec.quiet():
                out = orig(self, image_list, feature_maps)
            rec.record("anchors", f"torchvision.{type(self).__name__}", [], _flat(out),
                       vector_ops=2 * sum(t.numel() for t in _flat(out)))
            return out
        return forward

    def decode(orig, label):
        def wrapper(self, rel_codes, boxes, *args, **kwargs):
            ins = _flat((rel_codes, boxes))
            if rec.in_region or not on_meta(ins):
                return orig(self, rel_codes, boxes, *args, **kwargs)
            start = rec.begin_region()
            try:
                out = orig(self, rel_codes, boxes, *args, **kwargs)
            finally:
                rec.in_region = False
            rec.collapse(start, "box_decode", f"torchvision.{label}", ins, _flat(out))
            return out
        return wrapper

    def batched_nms(boxes, scores, idxs, iou_threshold):
        if not on_meta([boxes]):
            return orig_batched_nms(boxes, scores, idxs, iou_threshold)
        # one NMS over offset boxes (torchvision's coordinate trick): no torch.unique
        return box_ops._batched_nms_coordinate_trick(boxes, scores, idxs, iou_threshold)

    def multiscale_roi_align(x_filtered, boxes, output_size, sampling_ratio, scales, mapper):
        if not on_meta(x_filtered) or len(x_filtered) == 1:
            return orig_msra(x_filtered, boxes, output_size, sampling_ratio, scales, mapper)
        rois = poolers._convert_to_roi_format(boxes)
        mapper(boxes)  # level assignment: sqrt, log2, clamp per box (recorded as it runs)
        with rec.quiet():
            out = torch.empty((rois.shape[0], x_filtered[0].shape[1]) + tuple(output_size),
                              dtype=x_filtered[0].dtype, device="meta")
        rec.record("roi_align", "torchvision.MultiScaleRoIAlign", list(x_filtered) + [rois],
                   [out], vector_ops=roi_align_ops(out.numel(), sampling_ratio))
        return out

    def paste_masks(masks, boxes, img_shape, padding: int = 1):
        if not on_meta([masks]):
            return orig_paste(masks, boxes, img_shape, padding)
        h, w = int(img_shape[0]), int(img_shape[1])
        with rec.quiet():
            out = torch.empty((masks.shape[0], 1, h, w), dtype=masks.dtype, device="meta")
        n = masks.shape[0]
        rec.record("mask_paste", "torchvision.paste_masks_in_image", [masks, boxes], [out],
                   vector_ops=n * h * w + 4 * n * box_pixels(h, w))
        return out

    def heatmaps(maps, rois):
        if not on_meta([maps]):
            return orig_heatmaps(maps, rois)
        n, k = maps.shape[0], maps.shape[1]
        with rec.quiet():
            xy = torch.empty((n, k, 3), dtype=torch.float32, device="meta")
            scores = torch.empty((n, k), dtype=torch.float32, device="meta")
        px = box_pixels(*image_hw)
        rec.record("keypoint_decode", "torchvision.heatmaps_to_keypoints", [maps, rois],
                   [xy, scores], vector_ops=n * k * px * (BICUBIC_OPS + 1))
        return xy, scores

    def frozen_bn(self, x):
        # the same arithmetic as batch_norm in inference: captured as one batchnorm op, which
        # folds into the convolution before it (as any deployment compiler folds it)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            False, 0.0, self.eps)

    orig_batched_nms = box_ops.batched_nms
    orig_msra = poolers._multiscale_roi_align
    orig_paste = det_transform.paste_masks_in_image
    orig_heatmaps = roi_heads.heatmaps_to_keypoints
    with contextlib.ExitStack() as stack:
        for cls in (AnchorGenerator, DefaultBoxGenerator):
            stack.enter_context(_patched(cls, "forward", anchors(cls.forward)))
        for cls, meth in ((det_utils.BoxCoder, "decode"), (det_utils.BoxCoder, "decode_single"),
                          (det_utils.BoxLinearCoder, "decode")):
            stack.enter_context(_patched(cls, meth, decode(getattr(cls, meth),
                                                           f"{cls.__name__}.{meth}")))
        stack.enter_context(_patched(box_ops, "batched_nms", batched_nms))
        stack.enter_context(_patched(poolers, "_multiscale_roi_align", multiscale_roi_align))
        stack.enter_context(_patched(det_transform, "paste_masks_in_image", paste_masks))
        stack.enter_context(_patched(roi_heads, "heatmaps_to_keypoints", heatmaps))
        stack.enter_context(_patched(FrozenBatchNorm2d, "forward", frozen_bn))
        yield
