"""``bench``: measured latency, throughput, memory and efficiency of an ``.onnx`` file on ONNX Runtime.

For each batch size: warm-up runs, then timed runs (``iters`` of them, or for ``duration`` seconds),
each timed with ``time.perf_counter`` around one ``Engine.run``. Achieved GFLOP/s = the graph's
theoretical FLOPs per batch / the median latency; efficiency = achieved / peak (:mod:`edgecnn.profiler.peak`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from edgecnn.errors import EdgecnnError
from edgecnn.profiler.cost import GraphCost, graph_cost
from edgecnn.profiler.peak import Peak, measure_peak

#: coefficient of variation above which a run is flagged as too noisy to trust
NOISY_CV = 0.10
PERCENTILES = (50, 90, 95, 99)


def latency_stats(seconds: Sequence[float]) -> dict[str, float]:
    """mean, std, min, p50, p90, p95, p99, max (milliseconds) and cv (std/mean) of latencies in seconds."""
    if not len(seconds):
        raise ValueError("no latencies")
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    out = {"mean": float(ms.mean()), "std": float(ms.std(ddof=1)) if ms.size > 1 else 0.0, "min": float(ms.min())}
    for p in PERCENTILES:
        out[f"p{p}"] = float(np.percentile(ms, p))
    out["max"] = float(ms.max())
    out["cv"] = out["std"] / out["mean"] if out["mean"] > 0 else 0.0
    return out


@dataclass
class BatchResult:
    """Measurements at one batch size."""

    batch: int
    iters: int
    latency_ms: dict[str, float]
    #: images per second = batch / mean latency
    throughput: float
    cv: float
    noisy: bool
    rss_peak_bytes: int
    rss_growth_bytes: int
    gpu_memory_bytes: int | None
    gflops_per_image: float
    #: theoretical FLOPs of one batch / median latency
    achieved_gflops: float
    efficiency: float | None
    first_run_ms: float
    torch: dict[str, Any] | None = None
    layers: list[dict[str, Any]] | None = None
    provider_check: dict[str, Any] | None = None
    #: detection files: latency of the graph plus the host's decoding (NMS on the host, or sorting and cutting after
    #: NMS in the graph), and of the host part alone, reported apart from the graph's latency above
    end_to_end: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchResult:
    """A benchmark of one model on one provider over a sweep of batch sizes."""

    model: str
    path: str
    provider: str
    providers: list[str]
    precision: str
    threads: int
    peak: Peak | None
    session_s: float
    #: TensorRT only: engine build time on the first run, apart from steady-state latency
    engine_build_s: float | None
    batches: list[BatchResult]
    warnings: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    cost: GraphCost | None = None
    #: a reduced precision's deviation from the fp32 reference on the same inputs
    #: (:func:`edgecnn.profiler.deviation.deviation`); None at fp32
    deviation: dict[str, Any] | None = None
    #: why this precision ran (the backend's plan, ``auto``'s figures, the probe-input check)
    precision_reason: str = ""
    #: ``--precision auto``: what it measured and chose (:class:`edgecnn.runtime.auto_precision.AutoDecision`)
    auto: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("cost", "peak", "batches")}
        d["peak"] = self.peak.to_dict() if self.peak else None
        d["batches"] = [b.to_dict() for b in self.batches]
        if self.cost is not None:
            d["theoretical"] = self.cost.totals()
        return d


def machine_info() -> dict[str, Any]:
    """CPU model and flags, logical CPUs, memory, ONNX Runtime and OpenVINO versions (None when absent)."""
    from edgecnn.runtime.backends.ort_providers import runtime_versions
    from edgecnn.runtime.emulation import emulation
    from edgecnn.runtime.precision import detect_cpu

    versions = runtime_versions()
    cpu = detect_cpu()
    emu = emulation()
    return {"arch": emu.arch, "emulated": emu.reason if emu.emulated else None,
            "cpu": cpu.model, "cpu_flags": sorted(f for f, ok in cpu.known_flags().items() if ok),
            "native_bf16": cpu.native_bf16, "cpus": os.cpu_count(), "memory_bytes": psutil.virtual_memory().total,
            "onnxruntime": versions.get("onnxruntime") or versions.get("onnxruntime-gpu"),
            "openvino": versions.get("openvino"), "python": sys.version.split()[0]}


def _decision_warnings(metadata: dict[str, Any], running: str) -> list[str]:
    """Warnings when a file chosen by 'edgecnn optimize' runs on another runtime, CPU or runtime version."""
    from edgecnn.profiler.provenance import decision_warnings
    from edgecnn.runtime.backends.ort_providers import runtime_versions
    from edgecnn.runtime.precision import detect_cpu

    return decision_warnings(metadata, provider=running, cpu=detect_cpu().model, versions=runtime_versions())


def _gpu_memory_used(device_id: int = 0) -> int | None:
    try:
        import pynvml  # nvidia-ml-py, optional
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(device_id)
        return int(pynvml.nvmlDeviceGetMemoryInfo(handle).used)
    except Exception:
        return None


class _Progress:
    """A tqdm bar on stderr, or nothing (quiet, or stderr not a terminal)."""

    def __init__(self, total: int | None, desc: str, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=False, unit="run")

    def tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _RssSampler:
    """Callable that records the peak resident set size of ``proc``."""

    def __init__(self, proc: psutil.Process, start: int) -> None:
        self.proc, self.peak = proc, start

    def __call__(self) -> None:
        self.peak = max(self.peak, self.proc.memory_info().rss)


def time_runs(run: Callable[[], Any], *, warmup: int, iters: int | None, duration: float | None,
              tick: Callable[[], None] | None = None,
              sample: Callable[[], None] | None = None) -> list[float]:
    """Latencies (s) of ``run()`` after ``warmup`` calls: ``iters`` runs, or as many as fit in ``duration`` s."""
    for _ in range(warmup):
        run()
    out: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        run()
        out.append(time.perf_counter() - t0)
        if sample:
            sample()
        if tick:
            tick()
        if iters is not None:
            if len(out) >= iters:
                break
        elif time.perf_counter() - start >= (duration or 0.0) and len(out) >= 3:
            break
    return out


def bench(model: str | os.PathLike, batches: Sequence[int] = (1,), *, provider: str = "cpu",
          precision: str = "auto", device: str | None = None, warmup: int = 5, iters: int | None = None,
          duration: float | None = None,
          threads: int | None = None, compare: str | None = None, per_layer: bool = False,
          peak_gflops: float | None = None, measure_peak_now: bool = True, refresh_peak: bool = False,
          progress: bool | None = None, fallback: bool = False, seed: int = 0,
          reference: str | os.PathLike | None = None, compare_fp32: bool = True) -> BenchResult:
    """Benchmark ``model`` (an ``.onnx`` file or a zoo name) at each batch size in ``batches``.

    ``iters`` timed runs per batch size, or runs for ``duration`` seconds (default: 2 s); ``compare='torch'``
    also times the same model in torch eager (same threads and inputs); ``per_layer`` adds ONNX Runtime's
    per-layer profile at each batch size (OpenVINO: its performance counters). ``precision``
    (``auto|fp32|fp16|bf16|int8``) picks the zoo export for zoo names and the inference precision (see
    :func:`edgecnn.runtime.precision.resolve_precision`); ``device``: the OpenVINO device. On OpenVINO the
    compute peak (an ONNX Runtime probe) is not measured, so efficiency needs ``peak_gflops``.
    ``progress``: None shows a bar only on a terminal. When the precision that ran is not fp32, the result's
    ``deviation`` compares the outputs with the fp32 reference (ONNX Runtime CPU, else OpenVINO f32) on the same inputs
    (``reference``: that fp32 file, else found by :func:`edgecnn.profiler.deviation.find_reference`);
    ``compare_fp32=False`` skips it.
    """
    from edgecnn.profiler.source import resolve_model
    from edgecnn.runtime import Engine
    from edgecnn.runtime.engine import default_threads

    if iters is not None and iters < 1:
        raise EdgecnnError(f"iters must be >= 1, got {iters}")
    if warmup < 0:
        raise EdgecnnError(f"warmup must be >= 0, got {warmup}")
    if not batches or any(int(b) < 1 for b in batches):
        raise EdgecnnError(f"batch sizes must be >= 1, got {list(batches)}")
    if compare not in (None, "torch"):
        raise EdgecnnError(f"--compare supports only 'torch', got {compare!r}")
    if iters is None and duration is None:
        duration = 2.0
    from edgecnn.runtime.precision import export_precision

    path = resolve_model(model, export_precision(precision, provider))
    threads = int(threads or default_threads())
    max_b = max(int(b) for b in batches)
    t0 = time.perf_counter()
    engine = Engine(path, provider=provider, threads=threads, max_batch=max_b, fallback=fallback,
                    precision=precision, device=device)
    session_s = time.perf_counter() - t0
    info = engine.info
    if engine.batch_size is not None and any(int(b) != engine.batch_size for b in batches):
        raise EdgecnnError(f"{path.name} has a fixed batch size of {engine.batch_size}: bench it with "
                           f"--batch {engine.batch_size}, or export it with a dynamic batch")
    warnings: list[str] = [engine.warning] if getattr(engine, "warning", None) else []
    running = info.providers[0]
    warnings.extend(_decision_warnings(info.metadata, running))
    from edgecnn.runtime.emulation import emulation

    emu = emulation()
    if emu.emulated:  # the latencies below are the emulator's; the peak probe would only time it longer
        warnings.append(emu.timing_note + "; the results here say whether it runs and what it computes")
    peak = None
    if peak_gflops is not None or (measure_peak_now and engine.runner.peak_probe and not emu.emulated):
        peak = measure_peak(running, threads, providers=list(info.providers), gflops=peak_gflops,
                            refresh=refresh_peak)
    shape = [d if isinstance(d, int) and d > 0 else None for d in engine.sample_shape]
    if any(d is None for d in shape):
        size = info.metadata.get("input_size") or [224, 224]
        shape = [shape[0] or int(info.metadata.get("channels") or 3), shape[1] or size[0], shape[2] or size[1]]
    rng = np.random.default_rng(seed)
    show = (sys.stderr.isatty() if progress is None else progress)
    torch_model = None
    if compare == "torch":
        from edgecnn.profiler.torch_bridge import load_torch_model

        torch_model = load_torch_model(str(model), info.metadata)

    proc = psutil.Process()
    results: list[BatchResult] = []
    engine_build_s = None
    costs: dict[int, GraphCost] = {}
    seen: list[tuple[np.ndarray, np.ndarray]] = []  # (inputs, outputs) of each first run, for the deviation
    for b in [int(v) for v in batches]:
        cost = costs[b] = graph_cost(path, batch=b)
        x = rng.standard_normal((b, *shape)).astype(engine.input_dtype)
        t1 = time.perf_counter()
        y = engine.run(x)
        first_ms = (time.perf_counter() - t1) * 1e3
        seen.append((x, y))
        total = iters if iters is not None else None
        bar = _Progress(total, f"{Path(path).stem} batch {b}", show)
        rss0 = proc.memory_info().rss
        sampler = _RssSampler(proc, rss0)
        try:
            lat = time_runs(partial(engine.run, x), warmup=warmup, iters=iters, duration=duration, tick=bar.tick,
                            sample=sampler)
        finally:
            bar.close()
        peak_rss = [sampler.peak]
        stats = latency_stats(lat)
        rss1 = proc.memory_info().rss
        if engine.runner.builds_on_first_run and engine_build_s is None:
            engine_build_s = max(0.0, session_s + first_ms / 1e3 - stats["p50"] / 1e3)
        achieved = cost.flops / (stats["p50"] / 1e3) / 1e9
        res = BatchResult(
            batch=b, iters=len(lat), latency_ms={k: v for k, v in stats.items() if k != "cv"},
            throughput=b / (stats["mean"] / 1e3), cv=stats["cv"], noisy=stats["cv"] > NOISY_CV,
            rss_peak_bytes=int(peak_rss[0]), rss_growth_bytes=int(rss1 - rss0),
            gpu_memory_bytes=_gpu_memory_used() if not engine.on_cpu else None,
            gflops_per_image=cost.gflops_per_image, achieved_gflops=achieved,
            efficiency=achieved / peak.gflops if peak and peak.gflops > 0 else None, first_run_ms=first_ms)
        if res.noisy:
            warnings.append(f"batch {b}: latency varied by {100 * res.cv:.0f}% (coefficient of variation > "
                            f"{100 * NOISY_CV:.0f}%): the machine was busy or throttling, so these numbers are "
                            "not reliable; close other programs or raise --iters/--duration")
        if torch_model is not None:
            from edgecnn.profiler.torch_bridge import torch_latencies

            tbar = _Progress(total, f"torch batch {b}", show)
            try:
                tl = torch_latencies(torch_model, x.astype(np.float32), threads=threads, warmup=warmup,
                                     iters=iters, duration=duration, tick=tbar.tick)
            finally:
                tbar.close()
            ts = latency_stats(tl)
            res.torch = {"latency_ms": {k: v for k, v in ts.items() if k != "cv"}, "cv": ts["cv"],
                         "throughput": b / (ts["mean"] / 1e3), "iters": len(tl),
                         "achieved_gflops": cost.flops / (ts["p50"] / 1e3) / 1e9,
                         "speedup_ort_vs_torch": ts["p50"] / stats["p50"]}
        if per_layer:
            from edgecnn.profiler.perlayer import measure_layers

            timing = measure_layers(path, cost, provider=provider, threads=threads, iters=min(iters or 10, 20),
                                    peak=peak, fallback=fallback, x=x, precision=precision, device=device)
            res.layers = [t.to_dict() for t in timing.layers]
            res.provider_check = timing.provider_check
            if not timing.provider_check.get("ok", True):
                warnings.append(timing.provider_check["message"])
        if engine.task == "detection":
            res.end_to_end = _end_to_end(engine, x, warmup=warmup, iters=iters, duration=duration)
        results.append(res)
    if engine.task != "classification" and compare_fp32 and reference is None:
        compare_fp32 = False  # the deviation report compares class scores row by row: not a detector's boxes
        warnings.append(f"no deviation from fp32 for a {engine.task} file (it compares class scores); export "
                        "validation compares it with torch")
    dev = _deviation(model, path, engine, seen, rng, shape, reference=reference, threads=threads, seed=seed) \
        if compare_fp32 or reference is not None else None
    name = str(info.metadata.get("model") or Path(path).stem)
    return BenchResult(model=name, path=str(path), provider=info.requested_provider, providers=list(info.providers),
                       precision=info.precision, threads=threads, peak=peak,
                       session_s=session_s, engine_build_s=engine_build_s, batches=results, warnings=warnings,
                       machine=machine_info(), cost=costs[int(batches[0])], deviation=dev,
                       precision_reason=info.precision_reason, auto=info.auto)


def _end_to_end(engine: Any, x: np.ndarray, *, warmup: int, iters: int | None, duration: float | None
                ) -> dict[str, Any]:
    """A detection file's latency with the host's decoding (NMS on the host or the per-image cut after graph NMS),
    and of that host part alone on the same outputs."""
    from edgecnn.runtime.vision.detection import NmsParams, detections

    n = len(x)
    meta = engine.metadata

    def full() -> Any:
        return detections(engine.run_named(x), meta, n)

    outs = engine.run_named(x)
    e2e = latency_stats(time_runs(full, warmup=min(warmup, 2), iters=iters, duration=duration))
    host = latency_stats(time_runs(partial(detections, outs, meta, n), warmup=1, iters=iters, duration=duration))
    return {"nms": NmsParams.from_metadata(meta).placement, "latency_ms": {k: v for k, v in e2e.items() if k != "cv"},
            "host_ms": {k: v for k, v in host.items() if k != "cv"}}


def _deviation(model: str | os.PathLike, path: Path, engine: Any, seen: list[tuple[np.ndarray, np.ndarray]],
               rng: np.random.Generator, shape: Sequence[int], *, reference: str | os.PathLike | None,
               threads: int, seed: int) -> dict[str, Any] | None:
    """The deviation of this run from fp32 ONNX Runtime: the timed inputs (topped up to
    :data:`~edgecnn.profiler.deviation.MIN_SAMPLES` more seeded inputs) through the fp32 reference."""
    from edgecnn.profiler.deviation import MIN_SAMPLES, deviation, find_reference

    info = engine.info
    ref = find_reference(model, path, ran=info.precision, file_precision=info.file_precision, explicit=reference)
    if ref is None:
        return None
    rows = sum(len(x) for x, _ in seen)
    if rows < MIN_SAMPLES:
        extra = rng.standard_normal((MIN_SAMPLES - rows, *shape)).astype(engine.input_dtype)
        seen = [*seen, (extra, engine.run(extra))]
    x = np.concatenate([x for x, _ in seen])
    y = np.concatenate([np.asarray(y, dtype=np.float32).reshape(len(y), -1) for _, y in seen])
    what = f"{len(x)} seeded standard-normal inputs (seed {seed}), the timed ones first"
    return deviation(ref, x, y, ran=info.precision, threads=threads, inputs=what)
