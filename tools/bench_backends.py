"""Backend benchmark (not a test): the same model on ONNX Runtime and OpenVINO, fp32 / bf16 / int8.

Configurations (each in its own process, one after the other: two runtimes' thread pools in one process
spin against each other and distort both):

    ort-fp32   ONNX Runtime CPU provider, the fp32 file            (the reference: ratio 1.00x)
    ort-int8   ONNX Runtime CPU provider, the int8 QDQ file (edgecnn quantize, cached export)
    ov-f32     OpenVINO CPU, the fp32 file, INFERENCE_PRECISION_HINT f32
    ov-bf16    OpenVINO CPU, the fp32 file, bf16 (refused on a CPU without native bf16: the table says so)
    ov-int8    OpenVINO CPU, the int8 QDQ file
    ov-auto    OpenVINO CPU, the fp32 file, --precision auto (shows what auto picks on this CPU)

Per configuration and batch: median and p90 latency through ``Engine.run``, the same for the bare runtime call
on the same compiled model (harness overhead), the ratio of the median to ORT fp32 at that batch, and the
deviation of the logits from ORT fp32 on the same input (relative max error, top-1 agreement). The output names
the machine (``tools/results.py``) and goes to ``docs/results/backends-<model>.md`` (and ``.json``).

    python tools/bench_backends.py                                   # ResNet-50, batch 1 and 8
    python tools/bench_backends.py --model resnet18 --iters 5 --json out.json --results-dir /tmp/results
    python tools/bench_backends.py --render out.json                # (re)write the results file from a saved run
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import results  # noqa: E402

CONFIGS: dict[str, dict[str, str]] = {
    "ort-fp32": {"provider": "cpu", "file": "fp32", "precision": "fp32", "label": "ONNX Runtime CPU, fp32"},
    "ort-int8": {"provider": "cpu", "file": "int8", "precision": "int8", "label": "ONNX Runtime CPU, int8 QDQ file"},
    "ov-f32": {"provider": "openvino", "file": "fp32", "precision": "fp32", "label": "OpenVINO, inference f32"},
    "ov-bf16": {"provider": "openvino", "file": "fp32", "precision": "bf16", "label": "OpenVINO, inference bf16"},
    "ov-int8": {"provider": "openvino", "file": "int8", "precision": "int8", "label": "OpenVINO, int8 QDQ file"},
    "ov-auto": {"provider": "openvino", "file": "fp32", "precision": "auto", "label": "OpenVINO, --precision auto"},
}
REFERENCE = "ort-fp32"


def _time(fn: Any, warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def worker(config: str, path: str, batches: list[int], warmup: int, iters: int, threads: int, out_dir: str) -> dict:
    """One configuration in this process: Engine.run and the bare runtime call, alternated per batch."""
    from edgecnn.errors import EdgecnnError
    from edgecnn.runtime import Engine

    c = CONFIGS[config]
    try:
        engine = Engine(path, c["provider"], precision=c["precision"], threads=threads, max_batch=max(batches))
    except EdgecnnError as e:
        return {"config": config, "refused": str(e)}
    rows = []
    for b in batches:
        x = np.random.default_rng(0).standard_normal((b, *engine.sample_shape)).astype(engine.input_dtype)
        runner = engine.runner

        def bare(runner: Any = runner, x: np.ndarray = x) -> Any:  # the runtime's own call, nothing around it
            return runner.bare(x)

        harness = _time(lambda x=x: engine.run(x), warmup, iters)
        raw = _time(bare, 1, iters)
        np.save(Path(out_dir) / f"{config}-b{b}.npy", engine.run(x))
        rows.append({"batch": b, "median_ms": statistics.median(harness),
                     "p90_ms": float(np.percentile(harness, 90)), "bare_median_ms": statistics.median(raw),
                     "overhead": statistics.median(harness) / statistics.median(raw) - 1.0, "iters": iters})
    return {"config": config, "label": c["label"], "provider": engine.providers[0], "precision": engine.precision,
            "file_precision": engine.info.file_precision, "threads": engine.threads, "rows": rows}


def prepare(model: str) -> dict[str, str]:
    """The fp32 and int8 files of a zoo model (cached exports), or of a given .onnx file (int8: quantized)."""
    if model.endswith(".onnx"):
        return {"fp32": model}
    from edgecnn.exporters.cache import cached_export

    return {"fp32": str(cached_export(model, precision="fp32")), "int8": str(cached_export(model, precision="int8"))}


def run(args: argparse.Namespace) -> dict[str, Any]:
    files = prepare(args.model)
    batches = [int(b) for b in args.batch.split(",")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edgecnn-bench-backends-") as tmp:
        for config in args.configs.split(","):
            path = files.get(CONFIGS[config]["file"])
            if path is None:
                rows.append({"config": config, "refused": "no int8 file for a given .onnx (pass a zoo name)"})
                continue
            cmd = [sys.executable, __file__, "--worker", config, "--file", path, "--batch", args.batch,
                   "--warmup", str(args.warmup), "--iters", str(args.iters), "--threads", str(args.threads),
                   "--out-dir", tmp]
            print(f"{config}: {' '.join(cmd[2:])}", file=sys.stderr)
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if proc.returncode != 0:
                rows.append({"config": config, "refused": f"worker failed: {proc.stderr.strip()[-500:]}"})
                continue
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        ref = {r["batch"]: r["median_ms"] for res in rows if res["config"] == REFERENCE
               for r in res.get("rows", [])}
        for res in rows:
            for r in res.get("rows", []):
                r["ratio"] = ref[r["batch"]] / r["median_ms"] if r["batch"] in ref else None
                mine = Path(tmp) / f"{res['config']}-b{r['batch']}.npy"
                base = Path(tmp) / f"{REFERENCE}-b{r['batch']}.npy"
                if mine.is_file() and base.is_file():
                    a, b = np.load(mine).astype(np.float64), np.load(base).astype(np.float64)
                    r["rel_error"] = float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))
                    r["top1_agreement"] = float((a.argmax(1) == b.argmax(1)).mean())
    return {"model": args.model, "batches": batches, "threads": args.threads,
            "machine": results.machine(args.threads), "results": rows}


def render(data: dict[str, Any]) -> str:
    """Markdown: one row per configuration, per batch 'median ms (ratio to ORT fp32)', plus error and overhead
    (the machine is the results file's header)."""
    batches = data["batches"]
    head = (f"{data['model']}, {data['threads']} threads; median of the runs, each configuration in its own "
            "process")
    cols = [f"batch {b}: ms (x ORT fp32)" for b in batches] + ["precision run", "rel. error vs ORT fp32",
                                                                 "top-1 agree", "harness overhead"]
    lines = [head, "", "| configuration | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)]
    for res in data["results"]:
        label = CONFIGS.get(res["config"], {}).get("label", res["config"])
        if "refused" in res:
            lines.append(f"| {label} | " + " | ".join(["refused"] * len(batches))
                         + f" | {res['refused'][:90]} | | | |")
            continue
        by_b = {r["batch"]: r for r in res["rows"]}
        cells = []
        for b in batches:
            r = by_b.get(b)
            cells.append(f"{r['median_ms']:.2f} ({r['ratio']:.2f}x)" if r and r.get("ratio") else "")
        errs = [r.get("rel_error") for r in res["rows"] if r.get("rel_error") is not None]
        agree = [r.get("top1_agreement") for r in res["rows"] if r.get("top1_agreement") is not None]
        over = [r["overhead"] for r in res["rows"]]
        cells += [res["precision"], f"{max(errs):.1e}" if errs else "", f"{min(agree):.2f}" if agree else "",
                  f"{100 * max(over):+.1f}%"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet50", help="zoo name (fp32 and int8 exports) or an .onnx file")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--threads", type=int, default=None, help="default: the CPUs available")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--json", dest="json_out", help="write the results here")
    ap.add_argument("--render", metavar="JSON", help="(re)write the results file of a saved --json run and exit")
    results.add_arguments(ap)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.render:
        publish(args, results.load(args.render))
        return 0
    if args.threads is None:
        from edgecnn.runtime.engine import default_threads

        args.threads = default_threads()
    if args.worker:
        print(json.dumps(worker(args.worker, args.file, [int(b) for b in args.batch.split(",")], args.warmup,
                                args.iters, args.threads, args.out_dir)))
        return 0
    unknown = [c for c in args.configs.split(",") if c not in CONFIGS]
    if unknown:
        ap.error(f"unknown configurations {unknown}: choose from {', '.join(CONFIGS)}")
    data = {**run(args), "command": results.command(__file__, argv)}
    if args.json_out:
        results.save(args.json_out, data)
    publish(args, data)
    return 0


def publish(args: argparse.Namespace, data: dict[str, Any]) -> None:
    """Print the results text of a run and write ``backends-<model>`` (unless --no-results)."""
    model = Path(data["model"]).name.removesuffix(".onnx")
    title = f"{model}: ONNX Runtime and OpenVINO on CPU, fp32, bf16 and int8"
    print(results.write(args, f"backends-{model}", title, render(data), data))


if __name__ == "__main__":
    sys.exit(main())
