"""Benchmark the zoo on this machine with ``edgecnn.profiler.bench`` and write the results file ``zoo``.

    .venv/bin/python tools/bench_zoo.py                       # every zoo model, batch 1 and 8, fp32, CPU
    .venv/bin/python tools/bench_zoo.py --models resnet18,vgg16 --duration 1 --json out.json
    .venv/bin/python tools/bench_zoo.py --quick --results-dir /tmp/results   # 2 small models, 3 runs
    .venv/bin/python tools/bench_zoo.py --render out.json     # (re)write the results file from a saved run

Per model and batch size: theoretical GFLOPs per image, ORT latency p50, throughput, achieved GFLOP/s,
efficiency (achieved / the machine's measured MatMul peak) and torch eager p50 (same threads and inputs).
Needs a quiet CPU to mean anything: the report repeats the CV of each run and flags noisy ones with "!".
The table, with the machine (``tools/results.py``), goes to ``docs/results/zoo.md`` (and ``.json``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import results  # noqa: E402


def measure(models: list[str], batches: list[int], args: argparse.Namespace, iters: int | None,
            threads: int) -> dict[str, Any]:
    """Bench each model (ORT CPU fp32, torch eager beside it unless --no-torch); one row per model and batch."""
    from edgecnn.profiler import bench
    from edgecnn.profiler.peak import measure_peak

    peak = measure_peak("CPUExecutionProvider", threads, refresh=args.refresh_peak)
    print(f"peak: {peak.gflops:.1f} GFLOP/s, {peak.bandwidth_gbs or 0:.1f} GB/s ({peak.source}), "
          f"{threads} threads", file=sys.stderr)
    rows, runs = [], []
    for name in models:
        t0 = time.perf_counter()
        r = bench(name, batches, provider="cpu", warmup=args.warmup, iters=iters, duration=args.duration,
                  threads=threads, compare=None if args.no_torch else "torch", peak_gflops=peak.gflops,
                  progress=False)
        r.peak = peak
        runs.append(r.to_dict())
        for b in r.batches:
            rows.append({
                "model": name, "batch": b.batch, "gflops": b.gflops_per_image, "p50": b.latency_ms["p50"],
                "cv": b.cv, "noisy": b.noisy, "throughput": b.throughput, "achieved": b.achieved_gflops,
                "efficiency": b.efficiency,
                "torch_p50": b.torch["latency_ms"]["p50"] if b.torch else None,
                "speedup": b.torch["speedup_ort_vs_torch"] if b.torch else None})
        print(f"{name}: done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return {"peak": peak.to_dict(), "threads": threads, "rows": rows, "results": runs,
            "machine": results.machine(threads)}


def render(data: dict[str, Any]) -> str:
    """Markdown: one row per model and batch, then the peak the efficiency is measured against."""
    lines = ["| model | batch | GFLOPs/img | ORT p50 ms | img/s | GFLOP/s | efficiency | torch p50 ms | ORT speedup |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in data["rows"]:
        torch_col = f"{r['torch_p50']:.2f}" if r["torch_p50"] is not None else "-"
        speed = f"{r['speedup']:.1f}x" if r["speedup"] is not None else "-"
        noisy = " !" if r["noisy"] else ""
        lines.append(f"| {r['model']} | {r['batch']} | {r['gflops']:.3f} | {r['p50']:.2f}{noisy} | "
                     f"{r['throughput']:.1f} | {r['achieved']:.1f} | {100 * (r['efficiency'] or 0):.0f}% | "
                     f"{torch_col} | {speed} |")
    lines += ["", f"Efficiency against a measured peak of {data['peak']['gflops']:.1f} GFLOP/s (ORT MatMul "
              f"{data['peak'].get('matmul_n') or 2048}^3, {data['threads']} threads); '!' = coefficient of variation "
              "> 10% (machine busy)."]
    return "\n".join(lines)


def publish(args: argparse.Namespace, data: dict[str, Any]) -> None:
    """Print the results text of a run and write ``zoo`` (unless --no-results)."""
    print(results.write(args, "zoo", "The zoo on ONNX Runtime CPU, fp32 (torch eager beside it)", render(data), data))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=None, help="comma-separated zoo names (default: the whole zoo)")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds of timed runs per batch size")
    ap.add_argument("--iters", type=int, default=None, help="timed runs per batch size (overrides --duration)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-torch", action="store_true", help="skip the torch eager comparison")
    ap.add_argument("--refresh-peak", action="store_true", help="measure the MatMul peak again")
    ap.add_argument("--quick", action="store_true", help="lenet5 and resnet18, 3 runs each")
    ap.add_argument("--json", default=None, help="also write all results as JSON here")
    ap.add_argument("--render", metavar="JSON", help="(re)write the results file of a saved --json run and exit")
    results.add_arguments(ap)
    args = ap.parse_args(argv)
    if args.render:
        publish(args, results.load(args.render))
        return 0
    from edgecnn.models import list_models
    from edgecnn.runtime.engine import default_threads

    models = args.models.split(",") if args.models else list_models(task="classification")
    iters = args.iters
    if args.quick:
        models, iters = ["lenet5", "resnet18"], 3
    data = measure(models, [int(b) for b in args.batch.split(",")], args, iters, args.threads or default_threads())
    data["command"] = results.command(__file__, argv)
    if args.json:
        results.save(args.json, data)
    publish(args, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
