"""Per-layer measured time joined with per-layer theoretical FLOPs (``profile --measure``, ``bench --per-layer``).

Runs the model in a session with ONNX Runtime's profiler on (same provider and threads as ``bench``),
parses the trace (:mod:`edgecnn.profiler.trace`), maps every executed kernel to a layer of the
theoretical table, and reports per layer: mean time per run, share of the total, theoretical FLOPs,
achieved GFLOP/s, % of peak, and the execution provider(s) that ran it.
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from edgecnn import onnxfile
from edgecnn.profiler.cost import GraphCost, graph_cost
from edgecnn.profiler.peak import Peak, measure_peak
from edgecnn.profiler.report import human
from edgecnn.profiler.trace import map_to_layers, parse_trace, provider_check
from edgecnn.tables import table

if TYPE_CHECKING:
    from edgecnn.runtime import Engine


@dataclass
class LayerTiming:
    """Measured time of one layer (mean per run) next to its theoretical FLOPs."""

    index: int
    name: str
    kind: str
    time_ms: float
    share: float
    flops: int
    achieved_gflops: float | None
    pct_peak: float | None
    providers: list[str]
    kernels: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LayerTimings:
    """All layers' timings of one profiled run set."""

    layers: list[LayerTiming]
    total_ms: float
    runs: int
    unattributed_ms: float
    unattributed: list[str]
    provider_check: dict[str, Any]
    trace_path: str | None = None


@dataclass
class ProfileResult:
    """``profile()``: the theoretical cost, and with ``measure=True`` the measured per-layer timings."""

    cost: GraphCost
    timings: LayerTimings | None = None
    peak: Peak | None = None
    providers: list[str] = field(default_factory=list)

    def to_dict(self, nodes: bool = False) -> dict[str, Any]:
        d = self.cost.to_dict(nodes=nodes)
        if self.timings is not None:
            t = self.timings
            d["measured"] = {"total_ms": t.total_ms, "runs": t.runs, "unattributed_ms": t.unattributed_ms,
                             "unattributed": t.unattributed, "provider_check": t.provider_check,
                             "providers": self.providers, "peak": self.peak.to_dict() if self.peak else None,
                             "layers": [x.to_dict() for x in t.layers]}
        return d

    def csv_extra(self) -> dict[int, dict[str, Any]]:
        """Measured columns for the CSV, by layer index."""
        if self.timings is None:
            return {}
        return {x.index: {"time_ms": x.time_ms, "share": x.share, "achieved_gflops": x.achieved_gflops,
                          "pct_peak": x.pct_peak, "providers": "+".join(x.providers)} for x in self.timings.layers}

    def layer_table(self, roof: Any = None) -> str:
        """Measured vs theoretical, one row per layer (with ``roof``, a
        :class:`~edgecnn.profiler.roofline.Roof`: each layer's intensity, bound and attainable GFLOP/s)."""
        if self.timings is None:
            from edgecnn.profiler.report import layer_table

            return layer_table(self.cost, roof)
        return timing_table(self.timings, self.cost, roof)

    def summary(self) -> str:
        if self.timings is None:
            return ""
        t = self.timings
        achieved = self.cost.flops / (t.total_ms / 1e3) / 1e9 if t.total_ms else 0.0
        lines = [f"measured: {t.total_ms:.3f} ms per run in kernels ({t.runs} profiled runs), "
                 f"{achieved:.1f} GFLOP/s" + (f" = {100 * achieved / self.peak.gflops:.0f}% of the "
                                               f"{self.peak.gflops:.0f} GFLOP/s peak ({self.peak.source})"
                                               if self.peak else "")]
        if t.unattributed:
            lines.append(f"unattributed kernels: {t.unattributed_ms:.3f} ms ({', '.join(t.unattributed[:5])})")
        lines.append(("provider check: " if t.provider_check["ok"] else "warning: ") + t.provider_check["message"])
        return "\n".join(lines)


def timing_table(timings: LayerTimings, cost: GraphCost, roof: Any = None) -> str:
    """Text table: layer, output, time, share, FLOPs, GFLOP/s, % of peak, provider; with ``roof``, the layer's
    arithmetic intensity, roofline bound and the GFLOP/s that bound allows (``DW``: a depthwise convolution)."""
    by_index = {x.index: x for x in timings.layers}
    rows = []
    for lay in cost.layers[1:]:
        x = by_index.get(lay.index)
        if x is None:
            continue
        row = [lay.index, lay.name, lay.kind + (" DW" if lay.depthwise else ""), lay.shape_hwc,
               f"{x.time_ms:.3f}" if x.kernels else "fused", f"{100 * x.share:.1f}", human(lay.flops),
               f"{x.achieved_gflops:.1f}" if x.achieved_gflops is not None else "",
               f"{x.pct_peak:.0f}" if x.pct_peak is not None else "",
               ",".join(p.replace("ExecutionProvider", "") for p in x.providers)]
        if roof is not None:
            row += ([f"{lay.intensity:.1f}", roof.bound(lay.intensity), f"{roof.attainable(lay.intensity):.1f}"]
                    if lay.flops and lay.bytes_moved else ["", "", ""])
        rows.append(row)
    cols = ["#", "layer", "kind", "output (HxWxC)", "time ms", "share %", "FLOPs", "GFLOP/s", "% peak", "provider"]
    right = [True, False, False, True, True, True, True, True, True, False]
    total = ["", "TOTAL", "", "", f"{timings.total_ms:.3f}", "100.0", human(cost.flops), "", "", ""]
    if roof is not None:
        cols += ["FLOP/B", "bound", "roof GFLOP/s"]
        right += [True, False, True]
        total += [f"{cost.intensity:.1f}", roof.bound(cost.intensity), f"{roof.attainable(cost.intensity):.1f}"]
    rows.append(total)
    text = table(rows, cols, right)
    return text + "\n" + roof.describe() if roof is not None else text


def profiling_engine(path: str | os.PathLike, cost: GraphCost, *, provider: str = "cpu", threads: int | None = None,
                     fallback: bool = False, precision: str = "auto", device: str | None = None) -> Engine:
    """The :class:`~edgecnn.runtime.Engine` :func:`measure_layers` profiles with: batches of ``cost.batch``, and on
    OpenVINO compiled with performance counters (``PERF_COUNT``)."""
    from edgecnn.runtime import Engine
    from edgecnn.runtime.engine import default_threads

    threads = int(threads or default_threads())
    return Engine(path, provider=provider, threads=threads, fallback=fallback, max_batch=max(1, cost.batch),
                  precision=precision, device=device, profiling=True)


def measure_layers(path: str | os.PathLike, cost: GraphCost, *, provider: str = "cpu", threads: int | None = None,
                   iters: int = 10, peak: Peak | None = None, fallback: bool = False,
                   x: np.ndarray | None = None, keep_trace: str | os.PathLike | None = None,
                   precision: str = "auto", device: str | None = None, engine: Engine | None = None) -> LayerTimings:
    """Profile ``iters`` runs (after one warm-up run) with ONNX Runtime's profiler (OpenVINO: its performance
    counters) and join them to ``cost``. ``engine``: one from :func:`profiling_engine` (else it is built here)."""
    from edgecnn.runtime.backends import ort_providers as P

    if engine is None:
        engine = profiling_engine(path, cost, provider=provider, threads=threads, fallback=fallback,
                                  precision=precision, device=device)
    threads = engine.threads
    if x is None:
        shape = [cost.batch, *cost.input_shape[1:]]
        x = np.random.default_rng(0).standard_normal(shape).astype(engine.input_dtype)
    counters = engine.runner.profile(x, iters)
    if counters is not None:  # the backend's own per-node counters (OpenVINO's PERF_COUNT)
        return _measure_layers_counters(path, cost, engine, counters, iters=iters, peak=peak)
    ort = P.import_onnxruntime()
    info = engine.info
    with tempfile.TemporaryDirectory(prefix="edgecnn-trace-") as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "trace")
        so.log_severity_level = 3
        opt_path = Path(tmp) / "optimized.onnx"
        so.optimized_model_filepath = str(opt_path)
        so.add_session_config_entry("session.optimized_model_external_initializers_file_name", "optimized.data")
        so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        providers = list(info.providers)
        opts = [dict(info.provider_options.get(p, {})) for p in providers]
        sess = ort.InferenceSession(str(path), sess_options=so, providers=providers, provider_options=opts)
        feed = {sess.get_inputs()[0].name: x}
        for _ in range(iters + 1):
            sess.run(None, feed)
        trace_file = sess.end_profiling()
        events, runs = parse_trace(trace_file)
        if keep_trace:
            Path(keep_trace).write_bytes(Path(trace_file).read_bytes())
        try:
            optimized = onnxfile.open_model(opt_path, load_data=False) if opt_path.is_file() else None
        except Exception:
            optimized = None
    original = onnxfile.open_model(path, load_data=False)
    node_layer = {n.name: n.layer for n in cost.nodes}
    _fill_unnamed(original, cost)
    mapping = map_to_layers(sorted({e.node for e in events}), original, node_layer, optimized)
    return join(cost, events, runs, mapping, peak, provider_check(events, providers[0]),
                str(keep_trace) if keep_trace else None)


def _measure_layers_counters(path: str | os.PathLike, cost: GraphCost, engine: Engine,
                             counters: list[list[dict[str, Any]]], *, iters: int, peak: Peak | None) -> LayerTimings:
    """Per-layer times from a backend's own per-node counters (OpenVINO's ``PERF_COUNT``), each executed node
    mapped to a layer by name like ONNX Runtime's kernels (OpenVINO keeps the ONNX node name, or the output tensor
    name, and suffixes fused parts: ``conv1/WithoutBiases``). Reorders a backend inserts are unattributed."""
    from edgecnn.profiler.trace import TraceEvent

    where = engine.providers[0]
    events = [TraceEvent(node=e["node"], op=f"{e['op']} [{e['kernel']}]", provider=where, dur_us=e["us"], ts_us=0.0,
                         run=i) for i, run in enumerate(counters) for e in run]
    original = onnxfile.open_model(path, load_data=False)
    _fill_unnamed(original, cost)
    node_layer = {n.name: n.layer for n in cost.nodes}
    mapping = map_to_layers(sorted({e.node for e in events}), original, node_layer, None)
    check = {"ok": True, "requested": where, "nodes": [],
             "message": f"all {len({e.node for e in events})} executed nodes ran on {where} at {engine.precision} "
                        "(the backend's performance counters)"}
    return join(cost, events, iters, mapping, peak, check)


def _fill_unnamed(model: onnx.ModelProto, cost: GraphCost) -> None:
    """Give unnamed nodes the names graph_cost used (``<op>_<index>``)."""
    for i, nd in enumerate(model.graph.node):
        if not nd.name:
            nd.name = f"{nd.op_type}_{i}"


def join(cost: GraphCost, events: list, runs: int, mapping: dict[str, int | None], peak: Peak | None,
         check: dict[str, Any], trace_path: str | None = None) -> LayerTimings:
    """Sum kernel time per layer (mean per run) and compute GFLOP/s and % of peak."""
    runs = max(1, runs)
    per_layer: dict[int, float] = defaultdict(float)
    kernels: dict[int, set[str]] = defaultdict(set)
    provs: dict[int, set[str]] = defaultdict(set)
    unattributed: dict[str, float] = defaultdict(float)
    for e in events:
        layer = mapping.get(e.node)
        if layer is None:
            unattributed[e.node] += e.dur_us
            continue
        per_layer[layer] += e.dur_us
        kernels[layer].add(e.node)
        provs[layer].add(e.provider)
    total_us = sum(e.dur_us for e in events)
    out = []
    for lay in cost.layers[1:]:
        us = per_layer.get(lay.index, 0.0) / runs
        ms = us / 1e3
        achieved = lay.flops / (us / 1e6) / 1e9 if us > 0 and lay.flops else None
        out.append(LayerTiming(
            index=lay.index, name=lay.name, kind=lay.kind, time_ms=ms,
            share=(per_layer.get(lay.index, 0.0) / total_us) if total_us else 0.0, flops=lay.flops,
            achieved_gflops=achieved,
            pct_peak=100 * achieved / peak.gflops if achieved is not None and peak and peak.gflops else None,
            providers=sorted(provs.get(lay.index, ())), kernels=sorted(kernels.get(lay.index, ()))))
    return LayerTimings(layers=out, total_ms=total_us / runs / 1e3, runs=runs,
                        unattributed_ms=sum(unattributed.values()) / runs / 1e3, unattributed=sorted(unattributed),
                        provider_check=check, trace_path=trace_path)


def profile(model: str | os.PathLike, batch: int | None = None, *, measure: bool = False, provider: str = "cpu",
            threads: int | None = None, iters: int = 10, peak_gflops: float | None = None,
            precision: str = "auto", fallback: bool = False, device: str | None = None) -> ProfileResult:
    """Theoretical per-layer cost of ``model`` (file or zoo name); with ``measure=True`` also the measured
    time of each layer on ``provider`` (ONNX Runtime's profiler, or OpenVINO's performance counters) and the
    GFLOP/s reached there."""
    from edgecnn.profiler.source import resolve_model
    from edgecnn.runtime.precision import export_precision

    path = resolve_model(model, export_precision(precision, provider))
    cost = graph_cost(path, batch)
    if not measure:
        return ProfileResult(cost)
    engine = profiling_engine(path, cost, provider=provider, threads=threads, fallback=fallback, precision=precision,
                              device=device)
    threads = engine.threads
    info = engine.info
    peak = None
    if engine.runner.peak_probe or peak_gflops is not None:  # the peak probe runs on ONNX Runtime
        peak = measure_peak(info.providers[0], threads, providers=list(info.providers), gflops=peak_gflops)
    timings = measure_layers(path, cost, iters=iters, peak=peak, engine=engine)
    return ProfileResult(cost, timings, peak, list(info.providers))
