"""The declarative search space and its candidates.

A space is a frozen dataclass, written in YAML (`load_space`) or built in code; unknown keys
are errors. Two families:

* ``efficientnet_lite`` (the ImageNet track): candidates carved out of the pretrained
  EfficientNet-Lite0/1/2 so they inherit real weights. Knobs: the parent; the input
  resolution; per stage, how many blocks to drop from the end (the first block of a stage,
  which changes width and stride, always stays); per block, the fraction of its expanded
  channels kept (channel surgery by `compress.prune`, least important first, rounded to
  `quantum`); per stage with 5×5 depthwise kernels, 5 or 3 (a centre crop of the 5×5 weights);
  per stage, the weight bits (the stem, head and classifier stay 8-bit). A knob with one
  choice is not searched: the default space offers width 1.0 and kernel 5 only, because
  without recovery those cuts collapse top-1 (measured; docs/search.md), and a YAML space
  opens them.
* ``convnet`` (the from-scratch track): a three-stage conv net trained from scratch (on
  Fashion-MNIST), per stage its channels, depth, kernel, operator (a plain convolution or a
  depthwise-separable pair) and weight bits; costed at `deploy_resolution`.

The space is **filtered by the chip** (`for_chip`): weight bits are intersected with the
preset's; an operator the preset does not run is not offered (the depthwise-separable option,
or the whole Lite family, whose blocks are depthwise) unless `allow_fallback`, when it stays
and its host-fallback cost is charged. A `Candidate` is an immutable, normalised value (knobs
that do not apply, e.g. the width of a dropped block, are removed), so equal architectures
have equal stable ids.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from pathlib import Path

from netfrontier.errors import OptionError

FAMILIES = ("efficientnet_lite", "convnet")
LITE_PARENTS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
CONV_OPS = ("conv", "dwsep")
# op kinds each family's networks are made of (as the capture names them)
FAMILY_KINDS = {"efficientnet_lite": ("conv", "depthwise_conv", "batchnorm", "relu", "add",
                                      "pad", "avgpool", "matmul"),
                "convnet": ("conv", "batchnorm", "relu", "avgpool", "matmul")}


@dataclass(frozen=True)
class Candidate:
    """One architecture: its family and its normalised knob values (sorted name/value pairs)."""

    family: str
    params: tuple

    @staticmethod
    def of(family: str, params: dict) -> "Candidate":
        return Candidate(family, tuple(sorted(params.items())))

    @property
    def p(self) -> dict:
        return dict(self.params)

    @property
    def id(self) -> str:
        """A stable id: the same architecture gets the same id on every machine and run."""
        text = json.dumps([self.family, [list(kv) for kv in self.params]], sort_keys=True)
        prefix = {"efficientnet_lite": "lite", "convnet": "conv"}.get(self.family, "cand")
        return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"

    def to_json(self) -> dict:
        return {"family": self.family, "id": self.id, "params": self.p}

    @staticmethod
    def from_json(d: dict) -> "Candidate":
        return Candidate.of(d["family"], d["params"])


@lru_cache(maxsize=8)
def lite_layout(parent: str) -> tuple[tuple[tuple[int, int, int], ...], ...]:
    """Per stage, per block: (expanded channels, kernel, stride) of the Lite parent."""
    from efficientnet_lite_pytorch import EfficientNet

    from netfrontier.graph.torch_capture import meta_init
    from netfrontier.models.efficientnet_lite import VARIANTS

    with meta_init():
        m = EfficientNet.from_name(VARIANTS[parent][0])
    stages: list[list] = []
    for b in m._blocks:
        a = b._block_args
        s = a.stride[0] if isinstance(a.stride, (list, tuple)) else a.stride
        if a.input_filters != a.output_filters or not stages:
            stages.append([])
        exp = a.input_filters * a.expand_ratio if a.expand_ratio != 1 else 0
        stages[-1].append((exp, a.kernel_size, s))
    return tuple(tuple(s) for s in stages)


@dataclass(frozen=True)
class SearchSpace:
    """See the module doc. Tuples are the choices a knob takes."""

    family: str = "efficientnet_lite"
    # efficientnet_lite
    parents: tuple = LITE_PARENTS
    resolutions: tuple = (176, 192, 208, 224, 240, 260)
    max_drop: int = 2  # blocks a stage may lose from its end (never its first block)
    # expanded channels kept, per block; by default only 1.0: without recovery a width cut
    # costs far more top-1 than it saves latency (docs/search.md, "Which knobs pay")
    widths: tuple = (1.0,)
    kernels: tuple = (5,)  # for stages whose depthwise kernel is 5 (3: centre crop; see widths)
    quantum: int = 8  # kept channels are a multiple of this
    # convnet
    channels: tuple = (16, 24, 32, 48, 64)
    depths: tuple = (1, 2)
    conv_kernels: tuple = (3, 5)
    ops: tuple = CONV_OPS
    deploy_resolution: int = 112
    epochs: int = 2
    train_images: int = 2000
    # both
    wbits: tuple = (8,)
    abits: int = 8
    allow_fallback: bool = False

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise OptionError(f"unknown search-space family '{self.family}' "
                              f"(use {', '.join(FAMILIES)})")
        for name in ("parents", "resolutions", "widths", "kernels", "channels", "depths",
                     "conv_kernels", "ops", "wbits"):
            v = getattr(self, name)
            if not isinstance(v, tuple) or not v:
                raise OptionError(f"search space: '{name}' must be a non-empty list")
        bad = [p for p in self.parents if p not in LITE_PARENTS]
        if bad:
            raise OptionError(f"search space: unknown parent '{bad[0]}' (use "
                              f"{', '.join(LITE_PARENTS)})")
        if any(not (isinstance(r, int) and 32 <= r <= 512) for r in self.resolutions):
            raise OptionError("search space: resolutions must be whole numbers in 32-512")
        if any(not 0 < w <= 1 for w in self.widths):
            raise OptionError("search space: widths are kept fractions in (0, 1]")
        if any(k not in (3, 5) for k in self.kernels):
            raise OptionError("search space: Lite kernels are 5 (as trained) or 3 (centre crop)")
        if any(o not in CONV_OPS for o in self.ops):
            raise OptionError(f"search space: ops are {', '.join(CONV_OPS)}")
        if any(not (isinstance(b, int) and 2 <= b <= 32) for b in self.wbits):
            raise OptionError("search space: weight bits must be whole numbers in 2-32")
        if not 0 <= self.max_drop <= 8 or self.quantum < 1 or self.epochs < 1 \
                or self.train_images < 10 or not 8 <= self.deploy_resolution <= 1024:
            raise OptionError("search space: max_drop 0-8, quantum ≥ 1, epochs ≥ 1, "
                              "train_images ≥ 10, deploy_resolution 8-1024")

    # -- chip filter --------------------------------------------------------------------
    def for_chip(self, hw) -> "SearchSpace":
        """The space as the chip allows it: its weight bits, its operators (see module doc)."""
        bits = tuple(b for b in self.wbits if b in hw.weight_bits)
        if not bits:
            raise OptionError(f"{hw.name} supports none of the space's weight bits "
                              f"{list(self.wbits)} (it takes {list(hw.weight_bits)})")
        if self.abits not in hw.activation_bits:
            raise OptionError(f"{hw.name} does not take {self.abits}-bit activations "
                              f"(it takes {list(hw.activation_bits)})")
        runs = set(hw.supported_ops)

        def ok(kind):
            return "all" in runs or kind in runs

        missing = [k for k in FAMILY_KINDS[self.family] if not ok(k)]
        if missing and not self.allow_fallback:
            raise OptionError(f"{hw.name} does not run {', '.join(missing)}, which every "
                              f"{self.family} network needs (allow_fallback: true costs them "
                              "on the host)")
        ops = self.ops
        if self.family == "convnet" and not ok("depthwise_conv") and not self.allow_fallback:
            ops = tuple(o for o in ops if o != "dwsep") or ("conv",)
        return replace(self, wbits=bits, ops=ops)

    # -- knobs --------------------------------------------------------------------------
    def knobs(self) -> dict[str, tuple]:
        """Every knob and its choices: a fixed space (the same names for every candidate)."""
        k: dict[str, tuple] = {}
        if self.family == "efficientnet_lite":
            k["parent"] = self.parents
            k["resolution"] = self.resolutions
            layouts = [lite_layout(p) for p in self.parents]
            n_stages = max(len(lo) for lo in layouts)
            for s in range(n_stages):
                reps = max(len(lo[s]) for lo in layouts if s < len(lo))
                if reps > 1 and self.max_drop:
                    k[f"drop{s}"] = tuple(range(min(self.max_drop, reps - 1) + 1))
                if any(s < len(lo) and lo[s][0][1] == 5 for lo in layouts) \
                        and len(self.kernels) > 1:
                    k[f"k{s}"] = self.kernels
                for j in range(reps):
                    if any(s < len(lo) and j < len(lo[s]) and lo[s][j][0] for lo in layouts) \
                            and len(self.widths) > 1:
                        k[f"w{s}_{j}"] = self.widths
                if len(self.wbits) > 1:
                    k[f"b{s}"] = self.wbits
        else:
            for s in range(3):
                k[f"c{s}"] = self.channels
                k[f"d{s}"] = self.depths
                k[f"k{s}"] = self.conv_kernels
                if len(self.ops) > 1:
                    k[f"o{s}"] = self.ops
                if len(self.wbits) > 1:
                    k[f"b{s}"] = self.wbits
        return k

    def candidate(self, values: dict) -> Candidate:
        """The normalised candidate for a full assignment of knob values."""
        knobs = self.knobs()
        unknown = set(values) - set(knobs)
        if unknown:
            raise OptionError(f"unknown knob '{sorted(unknown)[0]}' for this space")
        v = {n: values.get(n, c[0]) for n, c in knobs.items()}
        for n, c in knobs.items():
            if v[n] not in c:
                raise OptionError(f"knob '{n}' = {v[n]!r} is not among its choices {list(c)}")
        if self.family == "convnet":
            p = {}
            for s in range(3):
                p[f"c{s}"], p[f"d{s}"], p[f"k{s}"] = v[f"c{s}"], v[f"d{s}"], v[f"k{s}"]
                p[f"o{s}"] = v.get(f"o{s}", self.ops[0])
                p[f"b{s}"] = v.get(f"b{s}", self.wbits[0])
            return Candidate.of(self.family, p)
        parent = v["parent"]
        lo = lite_layout(parent)
        p = {"parent": parent, "resolution": v["resolution"]}
        for s, blocks in enumerate(lo):
            keep = len(blocks) - min(v.get(f"drop{s}", 0), len(blocks) - 1)
            p[f"n{s}"] = keep
            if blocks[0][1] == 5:
                p[f"k{s}"] = v.get(f"k{s}", self.kernels[0])
            for j in range(keep):
                if blocks[j][0]:
                    p[f"w{s}_{j}"] = v.get(f"w{s}_{j}", self.widths[0])
            p[f"b{s}"] = v.get(f"b{s}", self.wbits[0])
        return Candidate.of(self.family, p)

    def extreme(self, small: bool = True) -> Candidate:
        """The cheapest (or the largest) candidate: fewest blocks, narrowest, smallest kernel,
        lowest resolution and bits (or the opposite); cost constraints are checked against it."""
        pick = min if small else max
        v = {}
        for n, c in self.knobs().items():
            if n == "parent":
                v[n] = c[0] if small else c[-1]
            elif n.startswith("o"):
                v[n] = "dwsep" if (small and "dwsep" in c) else ("conv" if "conv" in c else c[0])
            elif n.startswith("drop"):
                v[n] = max(c) if small else min(c)
            else:
                v[n] = pick(c)
        if small and self.family == "efficientnet_lite":  # the smallest parent by MACs
            v["parent"] = sorted(self.parents)[0]
        return self.candidate(v)

    def random(self, rng) -> Candidate:
        return self.candidate({n: c[int(rng.integers(len(c)))] for n, c in self.knobs().items()})

    def to_json(self) -> dict:
        return asdict(self)


def space_from_dict(d: dict, where: str = "<dict>") -> SearchSpace:
    names = {f.name for f in fields(SearchSpace)}
    unknown = set(d) - names
    if unknown:
        raise OptionError(f"{where}: unknown search-space key '{sorted(unknown)[0]}' "
                          f"(keys: {', '.join(sorted(names))})")
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
    try:
        return SearchSpace(**kw)
    except TypeError as exc:
        raise OptionError(f"{where}: {exc}") from None


def load_space(path) -> SearchSpace:
    """A space from a YAML file (the keys of SearchSpace; lists for choices)."""
    from netfrontier.hardware.checks import parse_yaml

    p = Path(path)
    if not p.is_file():
        raise OptionError(f"search space file '{p}' does not exist")
    try:
        d = parse_yaml(p.read_text(), str(p))
    except UnicodeDecodeError:
        raise OptionError(f"search space file '{p}' is not UTF-8 text") from None
    if not isinstance(d, dict):
        raise OptionError(f"search space file '{p}' must hold a mapping of keys")
    return space_from_dict(d, str(p))


def describe(c: Candidate) -> str:
    """The architecture in words."""
    p = c.p
    if c.family == "convnet":
        parts = [f"{p[f'd{s}']}× {'dw-separable' if p[f'o{s}'] == 'dwsep' else 'conv'} "
                 f"{p[f'k{s}']}×{p[f'k{s}']}, {p[f'c{s}']} ch, W{p[f'b{s}']}" for s in range(3)]
        return "3-stage conv net: " + "; ".join(parts)
    lo = lite_layout(p["parent"])
    full = sum(len(b) for b in lo)
    kept = sum(p[f"n{s}"] for s in range(len(lo)))
    widths = [p[k] for k in p if k.startswith("w")]
    narrowed = sum(1 for w in widths if w < 1)
    k3 = [s for s in range(len(lo)) if p.get(f"k{s}") == 3]
    bits = sorted({p[f"b{s}"] for s in range(len(lo))})
    words = [f"{p['parent'].replace('efficientnet_', 'EfficientNet-').replace('lite', 'Lite')} "
             f"at {p['resolution']} px", f"{kept}/{full} blocks"]
    if narrowed:
        words.append(f"{narrowed} blocks narrowed (mean kept width "
                     f"{sum(widths) / len(widths):.2f})")
    if k3:
        words.append(f"3×3 kernels in stage{'s' if len(k3) > 1 else ''} "
                     f"{', '.join(map(str, k3))}")
    words.append("W" + "/".join(map(str, bits)) + f"A{8}")
    return ", ".join(words)


def stage_table(c: Candidate) -> list[dict]:
    """One row per stage: blocks, kernel, expanded width kept, weight bits."""
    p = c.p
    if c.family == "convnet":
        return [{"stage": s, "blocks": p[f"d{s}"], "kernel": p[f"k{s}"], "channels": p[f"c{s}"],
                 "op": p[f"o{s}"], "wbits": p[f"b{s}"]} for s in range(3)]
    rows = []
    for s, blocks in enumerate(lite_layout(p["parent"])):
        ws = [p.get(f"w{s}_{j}", 1.0) for j in range(p[f"n{s}"]) if blocks[j][0]]
        rows.append({"stage": s, "blocks": f"{p[f'n{s}']}/{len(blocks)}",
                     "kernel": p.get(f"k{s}", blocks[0][1]),
                     "expanded kept": ", ".join(f"{w:g}" for w in ws) or "-",
                     "wbits": p[f"b{s}"]})
    return rows


def features(c: Candidate) -> list[float]:
    """A numeric encoding of the architecture for the accuracy predictor."""
    p = c.p
    if c.family == "convnet":
        out = []
        for s in range(3):
            out += [p[f"c{s}"], p[f"d{s}"], p[f"k{s}"], float(p[f"o{s}"] == "dwsep"),
                    p[f"b{s}"]]
        return [float(x) for x in out]
    out = [float(p["parent"] == q) for q in LITE_PARENTS] + [float(p["resolution"])]
    lo = lite_layout(p["parent"])
    for s in range(7):
        if s < len(lo):
            blocks = lo[s]
            ws = [p.get(f"w{s}_{j}", 1.0) for j in range(p[f"n{s}"]) if blocks[j][0]]
            out += [len(blocks) - p[f"n{s}"], float(p.get(f"k{s}", blocks[0][1])),
                    sum(ws) / len(ws) if ws else 1.0, min(ws) if ws else 1.0,
                    float(p[f"b{s}"])]
        else:
            out += [0.0, 3.0, 1.0, 1.0, 8.0]
    return out
