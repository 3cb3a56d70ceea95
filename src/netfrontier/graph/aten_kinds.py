"""Which netfrontier op kind each ATen operator belongs to, and how many vector ops it costs.

Unknown operators are not an error: they are recorded as `elementwise` (one op per output
element), which is the honest default for the pointwise tails that new architectures add.
"""
from __future__ import annotations

# Metadata-only ATen ops: no data moves (a compiler folds them into addressing).
VIEW_OPS = frozenset({
    "view", "_unsafe_view", "reshape", "t", "transpose", "permute", "expand", "unsqueeze",
    "squeeze", "slice", "select", "split", "split_with_sizes", "chunk", "unbind", "alias",
    "detach", "lift_fresh", "as_strided", "as_strided_", "unfold", "narrow", "flatten", "view_as", "expand_as",
    "_reshape_alias", "numpy_T", "movedim", "diagonal",
})
# Ops that create tensors from nothing (constants a compiler folds).
FACTORY_OPS = frozenset({
    "empty", "empty_like", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like",
    "arange", "linspace", "scalar_tensor", "new_zeros", "new_ones", "new_empty", "new_full",
    "empty_strided", "rand", "randn", "randn_like", "rand_like", "bernoulli", "lift_fresh_copy",
    "_to_copy", "meshgrid", "eye",
})

KIND_OF_ATEN = {
    "convolution": "conv", "_convolution": "conv", "conv2d": "conv",
    "mm": "matmul", "addmm": "matmul", "bmm": "matmul", "baddbmm": "matmul", "matmul": "matmul",
    "linear": "matmul",
    "_scaled_dot_product_flash_attention_for_cpu": "attention",
    "_scaled_dot_product_flash_attention": "attention",
    "_scaled_dot_product_efficient_attention": "attention",
    "_scaled_dot_product_cudnn_attention": "attention",
    "scaled_dot_product_attention": "attention",
    "_native_batch_norm_legit_no_training": "batchnorm", "_native_batch_norm_legit": "batchnorm",
    "native_batch_norm": "batchnorm", "batch_norm": "batchnorm",
    "native_layer_norm": "layernorm", "layer_norm": "layernorm",
    "native_group_norm": "groupnorm", "group_norm": "groupnorm",
    "relu": "relu", "relu_": "relu", "relu6": "relu", "hardtanh": "relu", "hardtanh_": "relu",
    "clamp": "relu", "clamp_": "relu", "clamp_min": "relu", "leaky_relu": "relu",
    "threshold": "relu",
    "hardswish": "hardswish", "hardswish_": "hardswish",
    "hardsigmoid": "hardsigmoid", "hardsigmoid_": "hardsigmoid",
    "sigmoid": "sigmoid", "sigmoid_": "sigmoid",
    "silu": "silu", "silu_": "silu", "gelu": "gelu", "tanh": "tanh",
    "add": "add", "add_": "add", "sub": "add", "sub_": "add", "rsub": "add",
    "mul": "mul", "mul_": "mul", "div": "mul", "div_": "mul",
    "_softmax": "softmax", "_safe_softmax": "softmax", "softmax": "softmax", "_log_softmax": "softmax",
    "max_pool2d": "maxpool", "max_pool2d_with_indices": "maxpool",
    "avg_pool2d": "avgpool", "_adaptive_avg_pool2d": "avgpool", "adaptive_avg_pool2d": "avgpool",
    "adaptive_max_pool2d": "maxpool",
    "mean": "reduce", "sum": "reduce", "amax": "reduce", "max": "reduce", "norm": "reduce",
    "linalg_vector_norm": "reduce",
    "cat": "concat", "stack": "concat",
    "clone": "copy", "contiguous": "copy", "copy_": "copy", "index": "copy", "gather": "copy",
    "index_select": "copy", "roll": "copy", "flip": "copy", "repeat": "copy",
    "constant_pad_nd": "pad", "pad": "pad",
    "upsample_bilinear2d": "resize", "upsample_nearest2d": "resize",
    "dropout": "copy", "native_dropout": "copy",
    # detection post-processing that reaches the dispatcher as one operator (torchvision's own
    # ops and the selection ops around them); graph/postprocess.py records the rest
    "roi_align": "roi_align", "roi_pool": "roi_pool", "nms": "nms",
    "topk": "select", "sort": "select", "argsort": "select", "nonzero": "select",
}

# Vector operations per output element (per input element for reductions and pooling windows).
VECTOR_OPS_PER_ELEM = {
    "batchnorm": 2, "layernorm": 5, "groupnorm": 5, "relu": 1, "hardswish": 3,
    "hardsigmoid": 2, "sigmoid": 4, "silu": 5, "gelu": 8, "tanh": 4, "add": 1, "mul": 1,
    "elementwise": 1, "softmax": 5, "reduce": 1, "concat": 1, "copy": 1, "pad": 1, "resize": 4,
    "maxpool": 1, "avgpool": 1, "unknown": 1,
    # post-processing kinds: see graph/postprocess.py for the work each one is charged
    "anchors": 2, "box_decode": 1, "select": 1, "nms": 1, "roi_align": 1, "roi_pool": 1,
    "mask_paste": 5, "keypoint_decode": 1,
}


def kind_of(op_name: str) -> str:
    """The op kind of an ATen overload packet name such as 'convolution' or 'add_'."""
    if op_name in VIEW_OPS or op_name in FACTORY_OPS:
        return "view"
    return KIND_OF_ATEN.get(op_name, "elementwise")
