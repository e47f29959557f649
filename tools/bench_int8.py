"""int8 vs fp32 on this machine: latency, file size and agreement (ResNet-50, VGG-16), digits accuracy.

    python tools/bench_int8.py                       # ResNet-50 + VGG-16 at batch 1 and 8, then digits
    python tools/bench_int8.py --models resnet50 --skip-digits --json out.json
    python tools/bench_int8.py --render out.json     # (re)write the results file from a saved run

Latency: ONNX Runtime CPU sessions through :class:`edgecnn.runtime.Engine` (all CPUs, graph
optimizations on), fp32 and int8 runs interleaved so that load from other processes hits both alike;
the median of the timed runs is reported (and the minimum). The zoo models have random weights
(no downloads here), so agreement is measured on random inputs with calibration on *other* random
inputs: it shows numerical fidelity, not ImageNet accuracy. Real accuracy: the digits task.

Targets: int8 >= 2x faster than fp32 on ResNet-50 at batch 8, >= 3.5x smaller; int8 within
1 point of fp32 on digits. The tables, with the machine (``tools/results.py``), go to
``docs/results/int8.md`` (and ``.json``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import results  # noqa: E402


def timed_runs(engines: dict[str, Any], x: np.ndarray, *, min_runs: int, budget_s: float) -> dict[str, list[float]]:
    """Interleaved timings (seconds per run) for each engine on the same batch."""
    for e in engines.values():  # warm-up
        e.run(x)
        e.run(x)
    times: dict[str, list[float]] = {k: [] for k in engines}
    start = time.perf_counter()
    while min(len(v) for v in times.values()) < min_runs or time.perf_counter() - start < budget_s:
        for k, e in engines.items():
            t = time.perf_counter()
            e.run(x)
            times[k].append(time.perf_counter() - t)
        if min(len(v) for v in times.values()) >= 200:
            break
    return times


def bench_model(name: str, out: Path, batches: list[int], *, calib: int, eval_n: int, budget_s: float,
                log: Any) -> dict[str, Any]:
    """Export ``name`` (fp32), quantize it (static QDQ defaults, random calibration), time and compare."""
    from edgecnn.exporters.api import export
    from edgecnn.onnxfile import file_size
    from edgecnn.profiler.accuracy import compare_outputs
    from edgecnn.quantize import quantize
    from edgecnn.runtime import Engine

    out.mkdir(parents=True, exist_ok=True)
    fp32 = out / f"{name}.onnx"
    t = time.perf_counter()
    if not fp32.is_file():
        export(name, fp32, force=True, progress=False)
    log(f"{name}: exported fp32 in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random calibration: intended here (speed test)
        q = quantize(fp32, out / f"{name}.int8.onnx", calib=f"random:{calib}", calib_batch=8)
    log(f"{name}: quantized in {time.perf_counter() - t:.1f} s ({q.quant_nodes})")
    engines = {"fp32": Engine(fp32, provider="cpu"), "int8": Engine(q.output, provider="cpu")}
    c, h, w = engines["fp32"].sample_shape
    x_eval = np.random.default_rng(1).standard_normal((eval_n, c, h, w)).astype(np.float32)
    ref = np.concatenate([engines["fp32"].run(x_eval[i:i + 8]) for i in range(0, eval_n, 8)])
    cand = np.concatenate([engines["int8"].run(x_eval[i:i + 8]) for i in range(0, eval_n, 8)])
    agree = compare_outputs(ref, cand)
    row: dict[str, Any] = {"model": name, "size_fp32": file_size(fp32), "size_int8": file_size(q.output),
                           "top1_agreement": agree["top1_agreement"], "cosine_mean": agree["cosine_mean"],
                           "sqnr_db": agree["sqnr_db"], "distinct_top1_fp32": int(len(set(ref.argmax(1).tolist()))),
                           "eval_inputs": eval_n, "latency": {}}
    for b in batches:
        x = np.random.default_rng(2).standard_normal((b, c, h, w)).astype(np.float32)
        times = timed_runs(engines, x, min_runs=5 if b > 1 else 10, budget_s=budget_s)
        lat = {k: {"median_ms": round(1000 * statistics.median(v), 2), "min_ms": round(1000 * min(v), 2),
                   "runs": len(v)} for k, v in times.items()}
        lat["speedup_median"] = round(lat["fp32"]["median_ms"] / lat["int8"]["median_ms"], 2)
        lat["speedup_min"] = round(lat["fp32"]["min_ms"] / lat["int8"]["min_ms"], 2)
        row["latency"][b] = lat
        log(f"{name} batch {b}: fp32 {lat['fp32']['median_ms']} ms, int8 {lat['int8']['median_ms']} ms "
            f"-> {lat['speedup_median']}x (min-based {lat['speedup_min']}x)")
    row["compression"] = round(row["size_fp32"] / row["size_int8"], 2)
    return row


def render(data: dict[str, Any]) -> str:
    """Markdown: one row per model and batch (latency, size, agreement), then the digits accuracy table."""
    rows, digits = data["models"], data.get("digits")
    lines = ["| model | batch | fp32 ms (median) | int8 ms (median) | speed-up (median / min) | fp32 MB | int8 MB "
             "| smaller | top-1 agreement | cosine | SQNR dB |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        for b, lat in r["latency"].items():
            lines.append(f"| {r['model']} | {b} | {lat['fp32']['median_ms']:.1f} | {lat['int8']['median_ms']:.1f} | "
                         f"{lat['speedup_median']:.2f}x / {lat['speedup_min']:.2f}x | {r['size_fp32'] / 1e6:.1f} | "
                         f"{r['size_int8'] / 1e6:.1f} | {r['compression']:.2f}x | "
                         f"{100 * r['top1_agreement']:.1f}% | {r['cosine_mean']:.4f} | {r['sqnr_db']:.1f} |")
    if digits:
        lines += ["", "| LeNet-5 on digits (360 held-out images) | top-1 | top-5 | size | top-1 agreement with fp32 |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for k, m in digits["models"].items():
            agree = m.get("vs_fp32", {}).get("top1_agreement")
            lines.append(f"| {k} | {100 * m['top1']:.2f}% | {100 * m['top5']:.2f}% | {m['size'] / 1e3:.0f} kB | "
                         f"{'-' if agree is None else f'{100 * agree:.2f}%'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet50,vgg16")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--out", default="runs/bench_int8")
    p.add_argument("--calib", type=int, default=32, help="random calibration samples")
    p.add_argument("--eval", type=int, default=64, help="random inputs for agreement")
    p.add_argument("--budget", type=float, default=15.0, help="seconds of timed runs per model and batch")
    p.add_argument("--skip-digits", action="store_true")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--render", metavar="JSON", help="(re)write the results file of a saved --json run and exit")
    results.add_arguments(p)
    a = p.parse_args(argv)
    if a.render:
        publish(a, results.load(a.render))
        return 0

    def log(m: str) -> None:
        print(m, file=sys.stderr, flush=True)

    out = Path(a.out)
    rows = [bench_model(m, out, [int(b) for b in a.batches.split(",")], calib=a.calib, eval_n=a.eval,
                        budget_s=a.budget, log=log) for m in a.models.split(",") if m]
    digits = None
    if not a.skip_digits:
        import digits as digits_tool

        digits = digits_tool.run_chain(out / "digits", epochs=a.epochs, log=log)
    from edgecnn.runtime.engine import default_threads

    data = {"models": rows, "digits": digits, "machine": results.machine(default_threads()),
            "command": results.command(__file__, argv)}
    if a.json:
        results.save(a.json, data)
    publish(a, data)
    return 0


def publish(args: argparse.Namespace, data: dict[str, Any]) -> None:
    """Print the results text of a run and write ``int8`` (unless --no-results)."""
    print(results.write(args, "int8", "int8 vs fp32 on ONNX Runtime CPU: latency, size, fidelity; digits accuracy",
                        render(data), data))


if __name__ == "__main__":
    sys.exit(main())
