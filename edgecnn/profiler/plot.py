"""Plots (matplotlib, the optional ``plot`` extra, imported only here and only when plotting).

* :func:`plot_bench`: latency (p50 with p90-p99 whiskers) and throughput against batch size; with per-layer
  data, a roofline chart beside them.
* :func:`plot_roofline`: measured peak compute and memory bandwidth as the roof; each layer and the whole
  model placed by arithmetic intensity (FLOPs per byte moved) and achieved GFLOP/s; depthwise
  convolutions drawn apart (hollow diamonds), since they sit far left of the ridge.
"""

from __future__ import annotations

import os
from typing import Any

from edgecnn._io import atomic_path
from edgecnn.errors import EdgecnnError


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EdgecnnError("plotting needs matplotlib: pip install 'edgecnn[plot]' (or pip install matplotlib)") \
            from None
    return plt


def _roofline(ax: Any, result: Any) -> None:
    peak = result.peak
    cost = result.cost
    per_layer = next((b for b in result.batches if b.layers), None)
    if peak is None or per_layer is None or cost is None:
        ax.set_visible(False)
        return
    from edgecnn.profiler.cost import graph_cost

    layer_cost = {lay.index: lay for lay in (cost if cost.batch == per_layer.batch else
                                             graph_cost(result.path, per_layer.batch)).layers}
    pts = [(layer_cost[x["index"]].intensity, x["achieved_gflops"],
            "depthwise conv" if layer_cost[x["index"]].depthwise else x["kind"]) for x in per_layer.layers
           if x["achieved_gflops"] and layer_cost.get(x["index"]) and layer_cost[x["index"]].bytes_moved]
    total_i = cost.intensity
    model_pt = (total_i, per_layer.achieved_gflops)
    xs = [p[0] for p in pts] + [model_pt[0]]
    lo, hi = max(min(xs) / 4, 1e-3), max(xs) * 4
    import numpy as np

    grid = np.logspace(np.log10(lo), np.log10(hi), 200)
    bw = peak.bandwidth_gbs
    roof = np.minimum(peak.gflops, grid * bw) if bw else np.full_like(grid, peak.gflops)
    ax.plot(grid, roof, "k-", lw=2, label=f"roof: {peak.gflops:.0f} GFLOP/s" + (f", {bw:.0f} GB/s" if bw else ""))
    kinds = sorted({p[2] for p in pts})
    for kind in kinds:
        sel = [p for p in pts if p[2] == kind]
        # depthwise convolutions: hollow diamonds, left of the ridge (little arithmetic per byte moved)
        style = (dict(marker="D", s=36, facecolors="none", edgecolors="tab:purple", linewidths=1.4)
                 if kind == "depthwise conv" else dict(s=18, alpha=0.75))
        ax.scatter([p[0] for p in sel], [p[1] for p in sel], label=kind, **style)
    ax.scatter([model_pt[0]], [model_pt[1]], marker="*", s=160, c="red", label="whole model", zorder=5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel("achieved GFLOP/s")
    ax.set_title(f"roofline, batch {per_layer.batch}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def plot_bench(result: Any, path: str | os.PathLike, *, overwrite: bool = True) -> None:
    """Write a PNG: latency and throughput against batch size (+ a roofline when per-layer data exists)."""
    plt = _pyplot()
    roof = any(b.layers for b in result.batches)
    fig, axes = plt.subplots(1, 3 if roof else 2, figsize=(15 if roof else 10, 4.2))
    batches = [b.batch for b in result.batches]
    p50 = [b.latency_ms["p50"] for b in result.batches]
    lo = [b.latency_ms["p50"] - b.latency_ms["min"] for b in result.batches]
    up = [b.latency_ms["p99"] - b.latency_ms["p50"] for b in result.batches]
    ax = axes[0]
    ax.errorbar(batches, p50, yerr=[lo, up], fmt="o-", capsize=4, label="ONNX Runtime p50 (min..p99)")
    if any(b.torch for b in result.batches):
        ax.plot([b.batch for b in result.batches if b.torch],
                [b.torch["latency_ms"]["p50"] for b in result.batches if b.torch], "s--", label="torch eager p50")
    ax.set_xlabel("batch size")
    ax.set_ylabel("latency (ms)")
    ax.set_xscale("log", base=2)
    ax.set_title(f"{result.model} latency ({result.providers[0].replace('ExecutionProvider', '')})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(batches, [b.throughput for b in result.batches], "o-", label="ONNX Runtime")
    if any(b.torch for b in result.batches):
        ax.plot([b.batch for b in result.batches if b.torch],
                [b.torch["throughput"] for b in result.batches if b.torch], "s--", label="torch eager")
    ax.set_xlabel("batch size")
    ax.set_ylabel("throughput (images/s)")
    ax.set_xscale("log", base=2)
    ax.set_title("throughput")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if roof:
        _roofline(axes[2], result)
    fig.tight_layout()
    with atomic_path(path, suffix=".png", overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def plot_roofline(result: Any, path: str | os.PathLike) -> None:
    """Write a PNG with only the roofline chart (needs ``bench(..., per_layer=True)``)."""
    plt = _pyplot()
    if not any(b.layers for b in result.batches):
        raise EdgecnnError("a roofline needs per-layer measurements: run bench with --per-layer")
    fig, ax = plt.subplots(figsize=(7, 5))
    _roofline(ax, result)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
