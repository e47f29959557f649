"""Plain-text and CSV renderings of profiler results (the CLI prints these; JSON comes from ``to_dict``)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from edgecnn.profiler.cost import GraphCost


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


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], right: Sequence[bool] | None = None) -> str:
    """An aligned text table; ``right[i]`` right-aligns column i (numbers)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    right = list(right) if right is not None else [False] * len(headers)

    def fmt(r: list[str]) -> str:
        return "  ".join(c.rjust(w) if right[i] else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths,
                                                                                              strict=True))).rstrip()

    return "\n".join([fmt(cells[0]), "  ".join("-" * w for w in widths)] + [fmt(r) for r in cells[1:]])


LAYER_COLUMNS = ["#", "layer", "kind", "ops", "output (HxWxC)", "activations", "params", "params w/o bias",
                 "MACs", "FLOPs", "weights", "act. memory", "FLOP/B"]


def _ops(ops: list[str], width: int = 28) -> str:
    text = "+".join(ops)
    return text if len(text) <= width else text[:width - 3] + "..."


def layer_rows(cost: GraphCost) -> list[list[Any]]:
    """The per-layer table as rows of display strings (see :data:`LAYER_COLUMNS`)."""
    rows = []
    for lay in cost.layers:
        rows.append([lay.index, lay.name, lay.kind, _ops(lay.ops), lay.shape_hwc, f"{lay.activations:,}",
                     f"{lay.params:,}", f"{lay.weights_only:,}", human(lay.macs), human(lay.flops),
                     human_bytes(lay.weight_bytes), human_bytes(lay.activation_bytes),
                     f"{lay.intensity:.1f}" if lay.bytes_moved else ""])
    return rows


def layer_table(cost: GraphCost) -> str:
    """The per-layer table with a TOTAL row (sums of the rows)."""
    rows = layer_rows(cost)
    rows.append(["", "TOTAL", "", "", "", f"{cost.activations:,}", f"{cost.params:,}", f"{cost.weights_only:,}",
                 human(cost.macs), human(cost.flops), human_bytes(cost.weight_bytes),
                 human_bytes(cost.activation_bytes), f"{cost.intensity:.1f}"])
    right = [True, False, False, False, True] + [True] * 8
    return table(rows, LAYER_COLUMNS, right)


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
    if cost.unknown_ops:
        lines.append(f"warning: no counting rule for {', '.join(cost.unknown_ops)}: their FLOPs are not in the "
                     "totals")
    return "\n".join(lines)


CSV_FIELDS = ["index", "name", "kind", "ops", "output_shape", "shape_hwc", "activations", "params", "bias_params",
              "weights_only", "macs", "flops", "weight_bytes", "activation_bytes", "bytes_moved", "intensity"]


def cost_csv(cost: GraphCost, extra: dict[int, dict[str, Any]] | None = None) -> str:
    """The per-layer table as CSV (one row per layer, raw numbers; ``extra`` adds columns by layer index)."""
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
