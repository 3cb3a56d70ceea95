"""Honest latency measurement: warm-up, then timed runs until a time or count budget.

On a GPU every run is bracketed by CUDA events and synchronised; on the CPU by perf_counter.
Runtimes: eager PyTorch, CUDA graphs (replay of a captured eager forward), torch.compile and
ONNX Runtime. The environment (device name, library versions, threads, clocks) goes with
every measurement.
"""
from __future__ import annotations

import functools
import gc
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from netfrontier.errors import MeasurementError, OptionError

RUNTIMES = ("eager", "cudagraph", "compile", "onnxruntime")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Measurement:
    """What was timed and how long it took (seconds per forward pass of one batch)."""

    model: str
    device: str  # device name, e.g. "NVIDIA H100 80GB HBM3" or the CPU model
    runtime: str
    dtype: str
    batch: int
    resolution: int
    median_s: float
    p90_s: float
    min_s: float
    runs: int
    env: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Budget:
    """Warm-up runs, then timed runs until `min_time_s` has passed and `min_runs` are done."""

    warmup: int = 3
    min_runs: int = 5
    max_runs: int = 200
    min_time_s: float = 1.0


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


@functools.lru_cache(maxsize=4)
def environment(device: str) -> dict:
    """Versions, threads and (where readable) clocks, recorded with every measurement."""
    env = {"torch": torch.__version__, "python": platform.python_version(),
           "threads": torch.get_num_threads(), "host": platform.node(),
           "cpu_count": os.cpu_count()}
    try:
        import torchvision

        env["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    if device.startswith("cuda"):
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=clocks.sm,clocks.mem,clocks.max.sm,power.draw,"
                 "temperature.gpu,driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10).stdout.strip()
            env["nvidia_smi"] = out
        except (OSError, subprocess.TimeoutExpired):
            pass
    return env


def host_probe_us(device: str, ops: int = 200, repeats: int = 5) -> float:
    """Host speed at the time of a measurement: median microseconds per dispatch of a
    one-element relu (no synchronisation inside), so that runs on a slower or busier host can
    be told apart afterwards. Recorded with every measurement as env["host_probe_us"]."""
    x = torch.zeros(1, device=device)
    best = []
    with torch.inference_mode():
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(ops):
                torch.relu(x)
            best.append((time.perf_counter() - t0) / ops * 1e6)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return round(statistics.median(best), 3)


def time_callable(fn: Callable[[], object], device: str, budget: Budget = Budget()) -> list[float]:
    """Per-run seconds of `fn()` after warm-up, synchronising the GPU around every run.

    The garbage collector is off while timing (as `timeit` does): a collection inside a timed
    run adds milliseconds that have nothing to do with the model."""
    gc_was_on = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        return _time_runs(fn, device, budget)
    finally:
        if gc_was_on:
            gc.enable()


def _time_runs(fn: Callable[[], object], device: str, budget: Budget) -> list[float]:
    cuda = device.startswith("cuda")
    for i in range(budget.warmup):
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        if i == 0 and time.perf_counter() - t0 > budget.min_time_s:
            break  # one run longer than the whole budget: the first call warmed it up
    times: list[float] = []
    start_all = time.perf_counter()
    while len(times) < budget.max_runs:
        if cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        if len(times) >= budget.min_runs and time.perf_counter() - start_all >= budget.min_time_s:
            break
    return times


def summarize(times: list[float]) -> dict:
    s = sorted(times)
    return {"median_s": statistics.median(s), "p90_s": s[min(len(s) - 1, int(0.9 * len(s)))],
            "min_s": s[0], "runs": len(s)}


def make_runner(model: torch.nn.Module, x: torch.Tensor, runtime: str, device: str,
                onnx_dir: str | None = None) -> Callable[[], object]:
    """A zero-argument callable running one forward pass of `model` on `x` in `runtime`."""
    if runtime not in RUNTIMES:
        raise OptionError(f"unknown runtime '{runtime}' (use {', '.join(RUNTIMES)})")
    cuda = device.startswith("cuda")
    if runtime == "eager":
        def run():
            with torch.inference_mode():
                return model(x)
        return run
    if runtime == "cudagraph":
        if not cuda:
            raise OptionError("runtime 'cudagraph' needs --device cuda")
        static_x = x.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.inference_mode(), torch.cuda.stream(stream):
            for _ in range(3):
                model(static_x)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph):
            model(static_x)
        return graph.replay
    if runtime == "compile":
        compiled = torch.compile(model, mode="max-autotune-no-cudagraphs" if cuda else "default")

        def run():
            with torch.inference_mode():
                return compiled(x)
        return run
    return _onnxruntime_runner(model, x, device, onnx_dir)


def _onnxruntime_runner(model, x, device, onnx_dir):
    import tempfile

    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MeasurementError("runtime 'onnxruntime' needs the onnxruntime package") from exc
    path = os.path.join(onnx_dir or tempfile.mkdtemp(), "model.onnx")
    with torch.inference_mode():
        torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"])
    providers = ["CUDAExecutionProvider"] if device.startswith("cuda") else ["CPUExecutionProvider"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    sess = ort.InferenceSession(path, opts, providers=providers)
    feed = {"input": x.detach().cpu().numpy()}
    return lambda: sess.run(None, feed)


def bench_module(model: torch.nn.Module, input_shape: tuple[int, ...], *, name: str,
                 device: str = "cpu", runtime: str = "eager", dtype: str = "fp32",
                 channels_last: bool | None = None, budget: Budget = Budget()) -> Measurement:
    """Time a (materialised) module; channels-last by default on CUDA convnets."""
    if dtype not in DTYPES:
        raise OptionError(f"unknown dtype '{dtype}' (use {', '.join(DTYPES)})")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MeasurementError("no CUDA device is available here (use --device cpu)")
    model = model.to(device=device, dtype=DTYPES[dtype]).eval()
    x = torch.randn(input_shape, device=device, dtype=DTYPES[dtype])
    if channels_last is None:
        channels_last = device.startswith("cuda") and len(input_shape) == 4
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    run = make_runner(model, x, runtime, device)
    times = time_callable(run, device, budget)
    env = dict(environment(device), channels_last=channels_last,
               host_probe_us=host_probe_us(device))
    return Measurement(model=name, device=device_name(device), runtime=runtime, dtype=dtype,
                       batch=int(input_shape[0]), resolution=int(input_shape[-1]),
                       env=env, **summarize(times))
