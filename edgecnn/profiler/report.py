"""Plain-text and CSV renderings of profiler results (the CLI prints these; JSON comes from ``to_dict``)."""

from __future__ import annotations

import csv
import io
from typing import Any

from edgecnn.profiler.cost import GraphCost
from edgecnn.tables import table


def human(n: float, unit: str = "", base: float = 1000.0) -> str:
    """``138357544`` -> ``138.36M``; bytes with ``base=1024`` and ``unit='B'`` -> ``527.79MiB``."""
    suffixes = ["", "K", "M", "G", "T"] if base == 1000.0 else ["", "Ki", "Mi", "Gi", "Ti"]
    value = float(n)
    for s in suffixes:
        if abs(value) < base or s == suffixes[-1]:
            return f"{value:.0f}{s}{unit}" if s == "" else f"{value:.2f}{s}{unit}"
        value /= base
    return f"{value:.2f}{unit}"


def human_bytes(n: float) -> str:
    """Bytes in binary units (KiB, MiB, GiB)."""
    return human(n, "B", 1024.0)


LAYER_COLUMNS = ["#", "layer", "kind", "role", "ops", "output (HxWxC)", "activations", "params", "params w/o bias",
                 "MACs", "FLOPs", "elementwise", "weights", "act. memory", "FLOP/B"]
#: short names of :mod:`edgecnn.graphcost.roles` in the text table
ROLE_SHORT = {"depthwise": "DW", "pointwise": "pw", "se": "se", "grouped": "grp", "conv": "", "fc": ""}


def _ops(ops: list[str], width: int = 28) -> str:
    text = "+".join(ops)
    return text if len(text) <= width else text[:width - 3] + "..."


def layer_rows(cost: GraphCost, roof: Any = None) -> list[list[Any]]:
    """The per-layer table as rows of display strings (see :data:`LAYER_COLUMNS`; with a
    :class:`~edgecnn.profiler.roofline.Roof`, a ``bound`` column)."""
    bounds = {}
    if roof is not None:
        from edgecnn.profiler.roofline import layer_bounds

        bounds = layer_bounds(cost, roof)
    rows = []
    for lay in cost.layers:
        row = [lay.index, lay.name, lay.kind, ROLE_SHORT.get(lay.role, lay.role), _ops(lay.ops), lay.shape_hwc,
               f"{lay.activations:,}", f"{lay.params:,}", f"{lay.weights_only:,}", human(lay.macs), human(lay.flops),
               human(lay.elementwise_flops), human_bytes(lay.weight_bytes), human_bytes(lay.activation_bytes),
               f"{lay.intensity:.1f}" if lay.bytes_moved else ""]
        if roof is not None:
            row.append(bounds.get(lay.index, {}).get("bound", ""))
        rows.append(row)
    return rows


def layer_table(cost: GraphCost, roof: Any = None) -> str:
    """The per-layer table with a TOTAL row (sums of the rows); with ``roof`` (a
    :class:`~edgecnn.profiler.roofline.Roof`) each layer's roofline bound, and the roof below the table."""
    rows = layer_rows(cost, roof)
    total = ["", "TOTAL", "", "", "", "", f"{cost.activations:,}", f"{cost.params:,}", f"{cost.weights_only:,}",
             human(cost.macs), human(cost.flops), human(cost.elementwise_flops), human_bytes(cost.weight_bytes),
             human_bytes(cost.activation_bytes), f"{cost.intensity:.1f}"]
    cols = list(LAYER_COLUMNS)
    right = [True, False, False, False, False, True] + [True] * 9
    if roof is not None:
        total.append(roof.bound(cost.intensity))
        cols.append("bound")
        right.append(False)
    rows.append(total)
    text = table(rows, cols, right)
    if roof is None:
        return text
    dw = sum(1 for lay in cost.layers if lay.depthwise)
    return text + "\n" + roof.describe() + (f"; DW = depthwise convolution ({dw} layers: group = channels)"
                                            if dw else "")


def totals_text(cost: GraphCost) -> str:
    """The totals block: one ``key: value`` line each."""
    per = f" (batch {cost.batch}; per image: {human(cost.macs_per_image)} MACs, " \
          f"{cost.gflops_per_image:.3f} GFLOPs)" if cost.batch > 1 else ""
    lines = [
        f"model: {cost.model}  input: {'x'.join(str(d) for d in cost.input_shape)}  batch: {cost.batch}",
        f"parameters: {cost.params:,} ({human(cost.params)}; {cost.weights_only:,} without biases)",
        f"MACs: {cost.macs:,} ({human(cost.macs)})   FLOPs: {cost.flops:,} ({human(cost.flops)}){per}",
        f"weight memory: {human_bytes(cost.weight_bytes)}",
        f"activation memory (sum over layers): {cost.activations:,} values, {human_bytes(cost.activation_bytes)}",
        f"peak live activation memory: {human_bytes(cost.peak_activation_bytes)}",
        f"bytes moved: {human_bytes(cost.bytes_moved)}   arithmetic intensity: {cost.intensity:.1f} FLOP/byte",
        f"layers: {len(cost.layers) - 1} (+ input)   nodes: {len(cost.nodes)}",
    ]
    meta_params = cost.metadata.get("num_params")
    if isinstance(meta_params, int) and meta_params != cost.params:
        lines.append(f"note: the torch model has {meta_params:,} parameters; the graph holds {cost.params:,} "
                     "(batch norm folded into the convolutions: 2 per channel become 1 bias)")
    by_design = sorted({op for layer in cost.layers for op in layer.ops if op in DATA_DEPENDENT_OPS}
                       | {op for op in cost.unknown_ops if op in DATA_DEPENDENT_OPS})
    others = [op for op in cost.unknown_ops if op not in DATA_DEPENDENT_OPS]
    if by_design:
        lines.append(f"note: {', '.join(by_design)} not counted: their work depends on the data (how many boxes "
                     "pass), not the shapes; their time is measured per layer (--per-layer)")
    if others:
        lines.append(f"warning: no counting rule for {', '.join(others)}: their FLOPs are not in the totals")
    return "\n".join(lines)


#: operators whose cost depends on the data, not on the shapes: named as not counted rather than warned about
DATA_DEPENDENT_OPS = ("NonMaxSuppression", "RoiAlign")

CSV_FIELDS = ["index", "name", "kind", "role", "depthwise", "ops", "output_shape", "shape_hwc", "activations", "params",
              "bias_params", "weights_only", "macs", "flops", "elementwise_flops", "weight_bytes", "activation_bytes",
              "bytes_moved", "intensity"]


def cost_csv(cost: GraphCost, extra: dict[int, dict[str, Any]] | None = None, roof: Any = None) -> str:
    """The per-layer table as CSV (one row per layer, raw numbers; ``extra`` adds columns by layer index; ``roof``
    adds ``bound`` and ``attainable_gflops``)."""
    if roof is not None:
        from edgecnn.profiler.roofline import layer_bounds

        bounds = layer_bounds(cost, roof)
        extra = {lay.index: {"bound": "", "attainable_gflops": "", **bounds.get(lay.index, {}),
                             **(extra or {}).get(lay.index, {})} for lay in cost.layers}
    buf = io.StringIO()
    extra_fields = sorted({k for d in (extra or {}).values() for k in d})
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS + extra_fields, lineterminator="\n")
    w.writeheader()
    for lay in cost.layers:
        d = lay.to_dict()
        row = {k: d[k] for k in CSV_FIELDS}
        row["ops"] = "+".join(lay.ops)
        row["output_shape"] = "x".join(str(v) for v in lay.output_shape)
        row.update((extra or {}).get(lay.index, {}))
        w.writerow(row)
    return buf.getvalue()


def bench_text(result: Any) -> str:
    """The ``bench`` report: header, one row per batch size, per-layer tables, warnings."""
    peak = result.peak
    head = [f"model: {result.model}  ({result.path})",
            f"provider: {', '.join(result.providers)} (requested {result.provider})  precision: {result.precision}"
            f"  threads: {result.threads}",
            f"session created in {result.session_s:.2f} s"
            + (f"; TensorRT engine build {result.engine_build_s:.2f} s (not in the latencies)"
               if result.engine_build_s is not None else "")]
    if getattr(result, "auto", None) is not None or "bit for bit" in (getattr(result, "precision_reason", "") or ""):
        head.append(f"precision: {result.precision_reason}")
    if peak is not None:
        bw = f", memory bandwidth {peak.bandwidth_gbs:.1f} GB/s" if peak.bandwidth_gbs else ""
        head.append(f"peak: {peak.gflops:.1f} GFLOP/s{bw} ({peak.source}: best of a large MatMul and a 3x3 conv "
                    f"in ORT on {peak.provider}, {peak.threads} threads)")
    rows = []
    for b in result.batches:
        lat = b.latency_ms
        rows.append([b.batch, b.iters, f"{lat['mean']:.2f}", f"{lat['std']:.2f}", f"{lat['min']:.2f}",
                     f"{lat['p50']:.2f}", f"{lat['p90']:.2f}", f"{lat['p95']:.2f}", f"{lat['p99']:.2f}",
                     f"{lat['max']:.2f}", f"{b.throughput:.1f}", f"{100 * b.cv:.1f}" + ("!" if b.noisy else ""),
                     human_bytes(b.rss_peak_bytes), human_bytes(b.rss_growth_bytes),
                     f"{b.gflops_per_image:.3f}", f"{b.achieved_gflops:.1f}",
                     f"{100 * b.efficiency:.0f}%" if b.efficiency is not None else ""])
    cols = ["batch", "runs", "mean ms", "std", "min", "p50", "p90", "p95", "p99", "max", "img/s", "cv %",
            "RSS peak", "RSS growth", "GFLOPs/img", "GFLOP/s", "eff."]
    parts = ["\n".join(head), "", table(rows, cols, [True] * len(cols))]
    gpu = [b for b in result.batches if b.gpu_memory_bytes is not None]
    if gpu:
        parts.append("GPU memory used: " + ", ".join(f"batch {b.batch}: {human_bytes(b.gpu_memory_bytes)}"
                                                     for b in gpu))
    torch_rows = [[b.batch, f"{b.torch['latency_ms']['p50']:.2f}", f"{b.latency_ms['p50']:.2f}",
                   f"{b.torch['throughput']:.1f}", f"{b.torch['achieved_gflops']:.1f}",
                   f"{b.torch['speedup_ort_vs_torch']:.2f}x"] for b in result.batches if b.torch]
    if torch_rows:
        parts += ["", "torch eager (same threads, same inputs):",
                  table(torch_rows, ["batch", "torch p50 ms", "ORT p50 ms", "torch img/s", "torch GFLOP/s",
                                     "ORT speedup"], [True] * 6)]
    e2e = [[b.batch, b.end_to_end["nms"], f"{b.latency_ms['p50']:.2f}", f"{b.end_to_end['host_ms']['p50']:.2f}",
            f"{b.end_to_end['latency_ms']['p50']:.2f}"] for b in result.batches if getattr(b, "end_to_end", None)]
    if e2e:
        parts += ["", "detection end to end (graph + the host's decoding and NMS):",
                  table(e2e, ["batch", "NMS", "graph p50 ms", "host p50 ms", "end-to-end p50 ms"], [True] * 5)]
    for b in result.batches:
        if b.layers:
            lrows = [[x["index"], x["name"], x["kind"], f"{x['time_ms']:.3f}" if x["kernels"] else "fused",
                      f"{100 * x['share']:.1f}", human(x["flops"]),
                      f"{x['achieved_gflops']:.1f}" if x["achieved_gflops"] is not None else "",
                      f"{x['pct_peak']:.0f}" if x["pct_peak"] is not None else "",
                      ",".join(p.replace("ExecutionProvider", "") for p in x["providers"])] for x in b.layers]
            parts += ["", f"per layer, batch {b.batch} (ORT profiler):",
                      table(lrows, ["#", "layer", "kind", "time ms", "share %", "FLOPs", "GFLOP/s", "% peak",
                                    "provider"], [True, False, False, True, True, True, True, True, False])]
            if b.provider_check:
                parts.append(("provider check: " if b.provider_check["ok"] else "warning: ")
                             + b.provider_check["message"])
    dev = getattr(result, "deviation", None)
    if dev:
        from edgecnn.profiler.deviation import deviation_lines

        parts += ["", *deviation_lines(dev)]
    for w in result.warnings:
        parts.append(f"warning: {w}")
    return "\n".join(parts)
