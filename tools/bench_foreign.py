"""int8 vs fp32 on a foreign (old model-zoo style) ResNet-50: does a file edgecnn did not write gain as much?

    python tools/bench_foreign.py                                  # resnet50, batch 8 and 1
    python tools/bench_foreign.py --model resnet18 --iters 5 --warmup 1 --batches 8   # a quick check
    python tools/bench_foreign.py --render out.json                # (re)write the results file of a saved run

Steps, each a separate process so that one measurement cannot warm or load the next:

1. ``tools/make_foreign_resnet50.py`` rewrites edgecnn's own export in the ONNX Model Zoo's old style
   (IR 3, opset 9, initializers listed as graph inputs, ``data_0`` in, 4-D ``softmax_1`` out, no metadata);
2. ``edgecnn quantize FILE --calib random:N --no-report`` quantizes it (static QDQ, per-channel int8
   weights, uint8 activations; edgecnn normalises the file first: IR >= 4, opset 13). Random calibration
   is enough for speed, never for accuracy;
3. ``edgecnn bench FILE --provider cpu --batch B`` times the fp32 and the int8 file at each batch size,
   each (file, batch) in its own process; the ratios of median latencies, with the machine
   (``tools/results.py``), go to ``docs/results/foreign-<model>.md`` (and ``.json``).

Target: int8 >= 2.5x faster than fp32 at batch 8, as on edgecnn's own ResNet-50
export (~3.0x measured, see docs/quantize.md). Absolute times differ between machines: compare ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))

import results  # noqa: E402

TARGET_RATIO = 2.5
TARGET_BATCH = 8


def _run(args: list[str], what: str) -> str:
    """Run a command, return its stdout; stop with its last stderr lines if it fails."""
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"error: {what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def edgecnn(*args: Any) -> list[str]:
    return [sys.executable, "-m", "edgecnn.cli", *map(str, args)]


def bench_one(path: Path, batch: int, args: argparse.Namespace) -> dict[str, Any]:
    """``edgecnn bench`` of one file at one batch size in a fresh process; its JSON."""
    timing = ["--iters", args.iters] if args.iters else ["--duration", args.duration]
    out = _run(edgecnn("bench", path, "--provider", "cpu", "--batch", batch, "--warmup", args.warmup, *timing,
                       "--peak-gflops", 1, "--json"), f"bench {path.name} at batch {batch}")
    return json.loads(out)


def render(data: dict[str, Any]) -> str:
    """Markdown: one row per batch size (fp32 and int8 medians, the ratio), then the target's verdict."""
    lines = [f"{data['model']} rewritten in the ONNX Model Zoo's old style, quantized by `edgecnn quantize` "
             f"(random calibration, {data.get('calib')} samples); `edgecnn bench --provider cpu`, each file and "
             "batch in its own process", "",
             "| batch | fp32 ms | int8 ms | int8 speed-up | runs (median of) | precision run |",
             "| ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in data["rows"]:
        lines.append(f"| {r['batch']} | {r['fp32_ms']:.2f} | {r['int8_ms']:.2f} | {r['ratio']:.2f}x | {r['iters']} | "
                     f"{' / '.join(r['precision'])} |")
    target = next((r for r in data["rows"] if r["batch"] == TARGET_BATCH), None)
    if target is not None:
        ok = target["ratio"] >= TARGET_RATIO
        lines += ["", f"Target int8 >= {TARGET_RATIO}x at batch {TARGET_BATCH}: {'met' if ok else 'NOT met'} "
                  f"({target['ratio']:.2f}x)."]
    return "\n".join(lines)


def publish(args: argparse.Namespace, data: dict[str, Any]) -> None:
    """Print the results text of a run and write ``foreign-<model>`` (unless --no-results)."""
    print(results.write(args, f"foreign-{data['model']}", f"int8 vs fp32 on a foreign (model-zoo style) "
                        f"{data['model']}", render(data), data))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet50", help="zoo model to export and rewrite [default: resnet50]")
    ap.add_argument("--batches", default="8,1", help="batch sizes, comma-separated [default: 8,1]")
    ap.add_argument("--calib", type=int, default=16, help="random calibration samples [default: 16]")
    ap.add_argument("--warmup", type=int, default=5, help="untimed runs per measurement [default: 5]")
    ap.add_argument("--iters", type=int, default=None, help="timed runs per measurement [default: --duration]")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of timed runs [default: 10]")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the files here [default: a temporary folder]")
    ap.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    ap.add_argument("--render", metavar="JSON", help="(re)write the results file of a saved --json run and exit")
    results.add_arguments(ap)
    args = ap.parse_args(argv)
    if args.render:
        publish(args, results.load(args.render))
        return 0
    batches = [int(b) for b in args.batches.split(",") if b]

    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        fp32 = work / f"{args.model}-zoo-style.onnx"
        int8 = work / f"{args.model}-zoo-style.int8.onnx"
        print(_run([sys.executable, str(TOOLS / "make_foreign_resnet50.py"), "--model", args.model, "-o", str(fp32)],
                   "make_foreign_resnet50.py").strip(), flush=True)
        int8.unlink(missing_ok=True)  # a kept --workdir from an earlier run
        _run(edgecnn("quantize", fp32, "--calib", f"random:{args.calib}", "--no-report", "-o", int8),
             "edgecnn quantize")
        print(f"quantized: {int8.name} ({int8.stat().st_size / 1e6:.1f} MB, fp32 {fp32.stat().st_size / 1e6:.1f} MB)",
              flush=True)
        rows, threads = [], None
        for b in batches:
            r32, r8 = bench_one(fp32, b, args), bench_one(int8, b, args)
            threads = r32.get("threads")
            p32, p8 = r32["batches"][0]["latency_ms"]["p50"], r8["batches"][0]["latency_ms"]["p50"]
            rows.append({"batch": b, "fp32_ms": p32, "int8_ms": p8, "ratio": p32 / p8,
                         "precision": [r32["precision"], r8["precision"]], "iters": r32["batches"][0]["iters"]})
            print(f"batch {b:3d}: fp32 {p32:9.2f} ms   int8 {p8:9.2f} ms   int8 is {p32 / p8:.2f}x faster "
                  f"(median of {rows[-1]['iters']} runs, {r8['precision']} ran)", flush=True)
    data = {"model": args.model, "calib": args.calib, "rows": rows, "machine": results.machine(threads),
            "command": results.command(__file__, argv)}
    if args.json:
        results.save(args.json, data)
    publish(args, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
