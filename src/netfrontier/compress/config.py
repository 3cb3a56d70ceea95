"""What to quantize and how: one frozen config, checked on construction."""
from __future__ import annotations

from dataclasses import dataclass, field

from netfrontier.errors import OptionError

MIN_BITS, MAX_BITS = 2, 16
ACT_OBSERVERS = ("minmax", "mse", "percentile")
WEIGHT_CLIPS = ("minmax", "mse")
ROUNDINGS = ("nearest", "gptq", "gptq-float")


def check_bits(what: str, bits: int) -> int:
    """`bits` as an int in 2-16, else OptionError naming `what`."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise OptionError(f"{what} must be an integer from {MIN_BITS} to {MAX_BITS}, got {bits!r}")
    return bits


@dataclass(frozen=True)
class QuantConfig:
    """Fake-quantization of every Conv/Linear layer: its weights and its input activation.

    wbits / abits: bit depths (2-16). Weights are symmetric (narrow range, e.g. ±7 at 4 bits),
    per output channel when `per_channel`; activations are asymmetric unsigned per tensor with
    an integer zero point. `weight_clip` "mse" searches the per-channel clipping range that
    minimises the squared rounding error (helps most at 4-6 bits); "minmax" uses max |w|.
    `act_observer` sets activation ranges from calibration data: "minmax", "mse" (clip range
    minimising squared error on a sample of values) or "percentile" (`percentile` of |x|).
    `first_last_bits` keeps the first and the last layer's weights at that depth (None: no
    exception). `layer_wbits` overrides weight bits by module-path prefix (mixed precision).
    `bias_correction` subtracts the mean output error that weight rounding causes, per channel,
    measured on the calibration data (Nagel et al. 2019, empirical form). `fold_bn` folds
    batch norms into the preceding conv before quantizing (as inference hardware does).
    `rounding` "nearest" rounds each weight to its nearest grid point; "gptq" rounds each
    Conv2d/Linear layer so that its output on the calibration data moves least (compress.gptq),
    then re-calibrates the activation ranges; "gptq-float" rounds toward the float model's
    outputs instead (each layer makes up for the errors before it) and matches their means.
    After a GPTQ rounding `bias_correction` has nothing to correct: the layer's float weights
    have been replaced by the rounded ones it would compare with.
    """

    wbits: int = 8
    abits: int = 8
    per_channel: bool = True
    weight_clip: str = "mse"
    act_observer: str = "minmax"
    percentile: float = 99.99
    first_last_bits: int | None = 8
    layer_wbits: dict = field(default_factory=dict, hash=False)
    bias_correction: bool = False
    fold_bn: bool = True
    rounding: str = "nearest"
    calib_batches: int | None = None  # None: all batches of the calibration loader

    def __post_init__(self):
        check_bits("wbits", self.wbits)
        check_bits("abits", self.abits)
        if self.first_last_bits is not None:
            check_bits("first_last_bits", self.first_last_bits)
        for path, bits in self.layer_wbits.items():
            check_bits(f"layer_wbits['{path}']", bits)
        if self.weight_clip not in WEIGHT_CLIPS:
            raise OptionError(f"weight_clip must be one of {', '.join(WEIGHT_CLIPS)}, "
                              f"got {self.weight_clip!r}")
        if self.rounding not in ROUNDINGS:
            raise OptionError(f"rounding must be one of {', '.join(ROUNDINGS)}, "
                              f"got {self.rounding!r}")
        if self.act_observer not in ACT_OBSERVERS:
            raise OptionError(f"act_observer must be one of {', '.join(ACT_OBSERVERS)}, "
                              f"got {self.act_observer!r}")
        if not 50.0 < self.percentile <= 100.0:
            raise OptionError(f"percentile must be in (50, 100], got {self.percentile}")

    @property
    def tag(self) -> str:
        return f"W{self.wbits}A{self.abits}"

    def bits_for(self, path: str, is_first_or_last: bool) -> int:
        """Weight bits of the layer at module path `path`."""
        best = None
        for prefix, bits in self.layer_wbits.items():
            if path == prefix or path.startswith(prefix + "."):
                if best is None or len(prefix) > len(best[0]):
                    best = (prefix, bits)
        if best is not None:
            return best[1]
        if is_first_or_last and self.first_last_bits is not None:
            return max(self.first_last_bits, self.wbits)
        return self.wbits
