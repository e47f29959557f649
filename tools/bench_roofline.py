"""Roofline of one model on this machine: ``edgecnn bench MODEL --per-layer`` at one batch size, its roofline
chart (:func:`edgecnn.profiler.plot.plot_roofline`, the third panel of ``edgecnn bench --per-layer --plot``) to
``docs/results/roofline-<model>.png`` and, with the machine (``tools/results.py``), where the model and its
slowest layers sit to ``docs/results/roofline-<model>.md`` (and ``.json``).

    python tools/bench_roofline.py                                    # resnet50, batch 1, 3 s of timed runs
    python tools/bench_roofline.py --model mobilenet_v2 --iters 3 --results-dir /tmp/results
    python tools/bench_roofline.py --render docs/results/roofline-resnet50.json   # rewrite the .md (not the picture)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import results  # noqa: E402

TOP_LAYERS = 8


def measure(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """Bench with per-layer timings (the peak with its bandwidth, measured once per machine); the result and
    its data: the roof, the whole model's point and every layer's (intensity, GFLOP/s, bound)."""
    from edgecnn.profiler import bench
    from edgecnn.profiler.cost import graph_cost
    from edgecnn.profiler.peak import Peak, measure_peak
    from edgecnn.profiler.roofline import Roof

    result = bench(args.model, [args.batch], provider="cpu", warmup=args.warmup, iters=args.iters,
                   duration=args.duration, threads=args.threads, per_layer=True, progress=False,
                   peak_gflops=args.peak_gflops)
    if args.peak_gflops and args.bandwidth_gbs:
        result.peak = Peak(args.peak_gflops, args.bandwidth_gbs, "CPUExecutionProvider", result.threads, "user")
    elif result.peak is None or not result.peak.bandwidth_gbs:  # a cached peak from a probe without the bandwidth
        result.peak = measure_peak("CPUExecutionProvider", result.threads, refresh=True)
    roof = Roof.from_peak(result.peak)
    assert roof is not None
    b = result.batches[0]
    graph = result.cost if result.cost.batch == b.batch else graph_cost(result.path, b.batch)
    cost = {lay.index: lay for lay in graph.layers}
    layers = []
    for x in b.layers:
        c = cost.get(x["index"])
        if c is None or not c.bytes_moved or not x.get("achieved_gflops"):
            continue
        layers.append({"name": x["name"], "kind": "depthwise conv" if c.depthwise else x["kind"],
                       "time_ms": x["time_ms"], "share": x["share"], "intensity": c.intensity,
                       "achieved_gflops": x["achieved_gflops"], "bound": roof.bound(c.intensity)})
    data = {"model": Path(str(args.model)).name.removesuffix(".onnx"), "batch": b.batch, "threads": result.threads,
            "roof": roof.to_dict(), "p50_ms": b.latency_ms["p50"], "intensity": result.cost.intensity,
            "achieved_gflops": b.achieved_gflops, "layers": layers}
    return result, data


def render(data: dict[str, Any]) -> str:
    """Markdown: the roof and the whole model, the time share of memory- and compute-bound layers, the slowest
    layers."""
    roof, peak = data["roof"], data["roof"]["gflops"]
    memory = [x for x in data["layers"] if x["bound"] == "memory"]
    lines = [f"{data['model']}, batch {data['batch']}, ONNX Runtime CPU fp32, {data['threads']} threads: roof "
             f"{peak:.1f} GFLOP/s and {roof['bandwidth_gbs']:.1f} GB/s ({roof['gflops_source']}), ridge at "
             f"{roof['ridge']:.1f} FLOP/byte. Whole model: {data['intensity']:.1f} FLOP/byte, p50 "
             f"{data['p50_ms']:.2f} ms, {data['achieved_gflops']:.1f} GFLOP/s "
             f"({100 * data['achieved_gflops'] / peak:.0f}% of peak). {len(memory)} of {len(data['layers'])} timed "
             f"layers are memory-bound ({100 * sum(x['share'] for x in memory):.0f}% of the layer time).", ""]
    slow = sorted(data["layers"], key=lambda x: -x["time_ms"])[:TOP_LAYERS]
    lines.append(results.table([[x["name"], x["kind"], f"{x['time_ms']:.3f}", f"{100 * x['share']:.1f}",
                                 f"{x['intensity']:.1f}", f"{x['achieved_gflops']:.1f}",
                                 f"{100 * x['achieved_gflops'] / peak:.0f}%", x["bound"]] for x in slow],
                               ["layer (slowest first)", "kind", "ms", "share %", "FLOP/byte", "GFLOP/s",
                                "of peak", "bound"]))
    return "\n".join(lines)


def publish(args: argparse.Namespace, data: dict[str, Any], result: Any = None) -> str:
    """Draw the roofline of ``result`` into ``roofline-<model>.png`` (when measured now) and write
    ``roofline-<model>`` (unless --no-results); return the results text."""
    name = f"roofline-{data['model']}"
    alt = f"roofline of {data['model']} at batch {data['batch']}: every layer by arithmetic intensity and GFLOP/s"
    if result is not None:
        from edgecnn.profiler.plot import plot_roofline

        with tempfile.TemporaryDirectory() as tmp:
            plot_roofline(result, Path(tmp) / "roofline.png")
            link = results.picture(args, Path(tmp) / "roofline.png", name, alt)
    else:
        link = f"![{alt}](results/{name}.png)"
    return results.write(args, name, f"Roofline of {data['model']} on ONNX Runtime CPU", render(data), data,
                         notes=link)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet50", help="zoo name or .onnx file [default: resnet50]")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=None, help="timed runs [default: --duration]")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds of timed runs [default: 3]")
    ap.add_argument("--threads", type=int, default=None, help="default: the CPUs available")
    ap.add_argument("--peak-gflops", type=float, default=None, help="the compute roof [default: measured once per "
                    "machine by edgecnn's probe, cached]")
    ap.add_argument("--bandwidth-gbs", type=float, default=None, help="the memory roof, with --peak-gflops "
                    "[default: measured with the peak]")
    ap.add_argument("--json", default=None, help="also write the data (roof, layers, machine) here")
    ap.add_argument("--render", metavar="JSON", help="rewrite the results .md of a saved run and exit (the picture "
                    "is drawn only when measuring)")
    results.add_arguments(ap)
    args = ap.parse_args(argv)
    if args.render:
        print(publish(args, results.load(args.render)))
        return 0
    result, data = measure(args)
    data["machine"] = results.machine(data["threads"])
    data["command"] = results.command(__file__, argv)
    if args.json:
        results.save(args.json, data)
    print(publish(args, data, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
