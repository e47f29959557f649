"""Runtime benchmarks (not a test): Engine overhead and Batcher throughput/latency.

1. overhead: batch-1 latency through ``Engine.run`` vs a bare ``onnxruntime.InferenceSession.run`` loop on
   the same file, in the same process, on the same session (target: within 3%). Runs are alternated run
   by run so drift (thermal, other load) hits both sides alike.
2. batcher: N single-image clients (threads), throughput and p50/p99 latency with a ``Batcher`` vs the
   same clients calling ``Engine.run`` directly (target on CPU: >= 1.0x throughput, p50 latency at most
   ``max_wait_ms`` above direct).

    python tools/bench_runtime.py                       # ResNet-18, exported with torch on first use
    python tools/bench_runtime.py --model m.onnx --json
    python tools/bench_runtime.py --only batcher --max-wait 1,2,5 --max-batch 8,16
    python tools/bench_runtime.py --render saved.json   # (re)write the results file from a saved --json run

Without ``--model`` the ResNet-18 file is exported once (torch + edgecnn.models) to ``--cache``. The tables, with
the machine (``tools/results.py``), go to ``docs/results/runtime.md`` (and ``.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import results  # noqa: E402

from edgecnn.runtime import Batcher, Engine  # noqa: E402
from edgecnn.runtime.engine import default_threads  # noqa: E402


def export_resnet18(path: Path) -> Path:
    """Export the zoo ResNet-18 (random weights are fine for timing) with a dynamic batch."""
    if path.is_file():
        return path
    import torch

    from edgecnn.models import create_model

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    torch.onnx.export(create_model("resnet18").eval(), torch.randn(1, 3, 224, 224), str(tmp), dynamo=False,
                      opset_version=17, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    os.replace(tmp, path)
    return path


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


# --------------------------------------------------------------------------- overhead


def bench_overhead(path: Path, threads: int, runs: int, warmup: int) -> dict[str, Any]:
    engine = Engine(path, "cpu", threads=threads)
    # The bare loop calls the very same InferenceSession: two sessions would each keep a thread pool whose
    # spinning threads steal the other's cores on a small CPU, which measures pool interference, not Engine.
    bare = engine.session
    shape = [1, *[d if isinstance(d, int) else 1 for d in engine.input_shape[1:]]]
    x = np.random.default_rng(0).standard_normal(shape).astype(engine.input_dtype)
    feed = {engine.input_name: x}
    names = engine.output_names

    for _ in range(warmup):
        bare.run(names, feed)
        engine.run(x)
    t_bare: list[float] = []
    t_eng: list[float] = []
    ratios: list[float] = []
    for r in range(runs):  # alternate run by run, swapping who goes first each time
        pair = {}
        for side in (("bare", "engine") if r % 2 == 0 else ("engine", "bare")):
            t0 = time.perf_counter()
            if side == "bare":
                bare.run(names, feed)
            else:
                engine.run(x)
            pair[side] = time.perf_counter() - t0
        t_bare.append(pair["bare"])
        t_eng.append(pair["engine"])
        ratios.append(pair["engine"] / pair["bare"])
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        engine.check_input(x)
    check_us = (time.perf_counter() - t0) / n * 1e6
    med_b, med_e = statistics.median(t_bare), statistics.median(t_eng)
    mean_b, mean_e = statistics.fmean(t_bare), statistics.fmean(t_eng)
    return {
        "model": str(path), "threads": threads, "runs_each": len(t_bare),
        "bare_p50_ms": med_b * 1e3, "engine_p50_ms": med_e * 1e3,
        "bare_mean_ms": mean_b * 1e3, "engine_mean_ms": mean_e * 1e3,
        "overhead_p50_pct": (med_e / med_b - 1) * 100, "overhead_mean_pct": (mean_e / mean_b - 1) * 100,
        "overhead_paired_median_pct": (statistics.median(ratios) - 1) * 100,
        "input_check_us": check_us, "wrapper_cost_pct": check_us * 1e-6 / med_b * 100,
        "target": "overhead within 3%",
        "pass": (statistics.median(ratios) - 1) * 100 <= 3.0,
    }


# --------------------------------------------------------------------------- batcher


def _cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _clients(call, xs: np.ndarray, clients: int, per_client: int) -> tuple[float, list[float], float]:
    lat: list[list[float]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)

    def client(k: int) -> None:
        start.wait()
        for i in range(per_client):
            x = xs[(k * per_client + i) % len(xs)]
            t0 = time.perf_counter()
            call(x)
            lat[k].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0, c0 = time.perf_counter(), _cpu_seconds()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    return wall, [v for sub in lat for v in sub], cpu


def bench_batcher(path: Path, threads: int, clients: int, per_client: int, max_batches: list[int],
                  max_waits: list[float], repeats: int, batcher_threads: int = 1) -> dict[str, Any]:
    """Direct clients on engines with ``threads`` and ``batcher_threads`` intra-op threads, vs Batchers
    (default workers: CPUs // engine threads) on both engines; speedups against the best direct row."""
    engines = {t: Engine(path, "cpu", threads=t, max_batch=max(max_batches)) for t in {threads, batcher_threads}}
    shape = [d if isinstance(d, int) else 1 for d in engines[threads].input_shape[1:]]
    xs = np.random.default_rng(0).standard_normal((64, *shape)).astype(engines[threads].input_dtype)
    for e in engines.values():  # warm up the batch shapes
        for n in {1, *max_batches}:
            e.run(xs[:n])
    total = clients * per_client * repeats

    modes: list[tuple[str, int, int | None, float | None]] = [("direct", t, None, None) for t in engines]
    modes += [("batcher", t, mb, mw) for t in sorted(engines) for mb in max_batches for mw in max_waits]
    runs: dict[Any, list[tuple[float, list[float], float, float, int]]] = {m: [] for m in modes}
    for _ in range(repeats):  # alternate all modes so load drift hits them alike
        for mode in modes:
            kind, t, mb, mw = mode
            engine = engines[t]
            if kind == "direct":
                wall, lat, cpu = _clients(lambda x, e=engine: e.run(x[None]), xs, clients, per_client)
                runs[mode].append((wall, lat, cpu, 1.0, clients))
            else:
                with Batcher(engine, max_batch=mb, max_wait_ms=mw) as batcher:
                    wall, lat, cpu = _clients(batcher.infer, xs, clients, per_client)
                runs[mode].append((wall, lat, cpu, batcher.stats.mean_batch, batcher.workers))

    rows = []
    for mode in modes:
        kind, t, mb, mw = mode
        rs = runs[mode]
        wall, cpu = sum(r[0] for r in rs), sum(r[2] for r in rs)
        lat = [v for r in rs for v in r[1]]
        rows.append({"mode": kind, "threads": t, "workers": rs[0][4] if kind == "batcher" else None,
                     "max_batch": mb, "max_wait_ms": mw, "mean_batch": statistics.fmean(r[3] for r in rs),
                     "requests": total, "throughput_ips": total / wall, "img_per_cpu_s": total / cpu if cpu else None,
                     "p50_ms": pct(lat, 50) * 1e3, "p99_ms": pct(lat, 99) * 1e3})
    best = max((r for r in rows if r["mode"] == "direct"), key=lambda r: r["throughput_ips"])
    for r in rows:
        r["speedup"] = r["throughput_ips"] / best["throughput_ips"]
        if r["mode"] == "batcher":
            r["p50_added_ms"] = r["p50_ms"] - best["p50_ms"]
            r["pass"] = r["speedup"] >= 1.0 and r["p50_added_ms"] <= r["max_wait_ms"]
    return {"model": str(path), "clients": clients, "per_client": per_client, "repeats": repeats,
            "reference": f"direct, {best['threads']} threads (best direct throughput)",
            "target": "speedup >= 1.0 and p50_added_ms <= max_wait_ms", "rows": rows}


# --------------------------------------------------------------------------- output


def _table(rows: list[dict[str, Any]], cols: list[tuple[str, str, str]]) -> str:
    """A Markdown table; (key, header, format spec); missing values print as '-'."""
    def cell(r: dict[str, Any], key: str, fmt: str) -> str:
        v = r.get(key)
        return "-" if v is None else format(v, fmt) if fmt else str(v)

    return results.table([[cell(r, k, f) for k, _, f in cols] for r in rows], [h for _, h, _ in cols])


def render(data: dict[str, Any]) -> str:
    """Markdown: the Engine overhead table and the Batcher table (whichever ran)."""
    out = [f"model `{Path(data['model']).name}`"]
    if "overhead" in data:
        o = data["overhead"]
        out += ["", f"Engine overhead, batch 1, {o['threads']} threads, {o['runs_each']} alternating runs each "
                f"(target {o['target']})", "", _table([
                    {"side": "InferenceSession.run", "p50": o["bare_p50_ms"], "mean": o["bare_mean_ms"]},
                    {"side": "Engine.run", "p50": o["engine_p50_ms"], "mean": o["engine_mean_ms"]},
                    {"side": "overhead %", "p50": o["overhead_p50_pct"], "mean": o["overhead_mean_pct"]},
                ], [("side", "", ""), ("p50", "p50 ms", ".3f"), ("mean", "mean ms", ".3f")]), "",
                f"Paired overhead (median of per-pair ratios): {o['overhead_paired_median_pct']:+.2f}%; "
                f"input check {o['input_check_us']:.1f} us per call ({o['wrapper_cost_pct']:.3f}% of a run); "
                f"{'PASS' if o['pass'] else 'FAIL'}."]
    if "batcher" in data:
        b = data["batcher"]
        out += ["", f"Batcher: {b['clients']} single-image clients x {b['per_client']} requests x {b['repeats']} "
                f"repeats; speedup vs {b['reference']} (target {b['target']})", "",
                _table(b["rows"], [("mode", "mode", ""), ("threads", "threads", ""), ("workers", "workers", ""),
                                   ("max_batch", "max_batch", ""),
                                   ("max_wait_ms", "max_wait_ms", ""), ("mean_batch", "mean batch", ".1f"),
                                   ("throughput_ips", "img/s", ".1f"), ("speedup", "speedup", ".2f"),
                                   ("img_per_cpu_s", "img/cpu-s", ".1f"),
                                   ("p50_ms", "p50 ms", ".1f"), ("p99_ms", "p99 ms", ".1f"),
                                   ("p50_added_ms", "p50 added ms", ".1f"), ("pass", "pass", "")])]
    return "\n".join(out)


def publish(args: argparse.Namespace, data: dict[str, Any]) -> str:
    """Write ``runtime`` (unless --no-results); return the results text."""
    return results.write(args, "runtime", "Runtime: Engine overhead and Batcher throughput on ONNX Runtime CPU",
                         render(data), data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="an .onnx file with an NCHW input (default: ResNet-18)")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "edgecnn-bench",
                    help="where the ResNet-18 export is kept")
    ap.add_argument("--only", choices=["overhead", "batcher"], help="run one benchmark only")
    ap.add_argument("--threads", type=int, default=default_threads(), help="intra-op threads")
    ap.add_argument("--runs", type=int, default=200, help="overhead: alternating runs per side")
    ap.add_argument("--warmup", type=int, default=10, help="overhead: warm-up runs per side")
    ap.add_argument("--clients", type=int, default=16, help="batcher: client threads")
    ap.add_argument("--per-client", type=int, default=12, help="batcher: requests per client")
    ap.add_argument("--repeats", type=int, default=2, help="batcher: alternating repetitions of each mode")
    ap.add_argument("--max-batch", default="8,16", help="batcher: comma-separated max_batch values")
    ap.add_argument("--max-wait", default="2", help="batcher: comma-separated max_wait_ms values")
    ap.add_argument("--batcher-threads", type=int, default=1,
                    help="batcher: intra-op threads of the serving engine (workers = CPUs // threads)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    ap.add_argument("--render", metavar="JSON", help="(re)write the results file of a saved --json run and exit")
    results.add_arguments(ap)
    args = ap.parse_args(argv)
    if args.render:
        print(publish(args, results.load(args.render)))
        return 0

    path = args.model or export_resnet18(args.cache / "resnet18.onnx")
    result: dict[str, Any] = {"model": str(path), "onnxruntime": ort.__version__, "cpus": default_threads()}
    if args.only in (None, "overhead"):
        result["overhead"] = bench_overhead(path, args.threads, args.runs, args.warmup)
    if args.only in (None, "batcher"):
        result["batcher"] = bench_batcher(path, args.threads, args.clients, args.per_client,
                                          [int(v) for v in args.max_batch.split(",")],
                                          [float(v) for v in args.max_wait.split(",")], args.repeats,
                                          args.batcher_threads)
    result["machine"] = results.machine(args.threads)
    result["command"] = results.command(__file__, argv)
    text = publish(args, result)
    print(json.dumps(result, indent=2) if args.json else text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
