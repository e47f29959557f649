"""Mobile zoo benchmark (not a test): every mobile model in fp32 and int8, on ONNX Runtime CPU (and OpenVINO).

Per model: parameters (the torch model's), GMACs (Conv and Linear, per image), and per configuration and batch the
median latency, the achieved GFLOP/s (the graph's FLOPs, elementwise work included, over the median) and the
speed-up over ONNX Runtime fp32 at that batch. Configurations are those of ``tools/bench_backends.py``, run by its
runner: each in its own process, one after the other (``ort-fp32``, ``ort-int8``, and ``ov-f32``, ``ov-int8``
when OpenVINO is installed). The int8 files are ``edgecnn quantize``'s defaults (static QDQ, per-channel int8
weights, uint8 activations) on random calibration data: right for speed, not for accuracy. ``--optimize`` also
runs ``edgecnn.optimize`` on each model (slow: minutes per model) and records what it picks.

The table, with the machine (``tools/results.py``), goes to ``docs/results/mobile.md`` (and ``.json``).

    python tools/bench_mobile.py --json runs/mobile.json                       # all 11 models, batch 1 and 8
    python tools/bench_mobile.py --models mobilenet_v3_small,squeezenet1_1 --iters 5 --results-dir /tmp/results
    python tools/bench_mobile.py --render runs/mobile.json                     # (re)write the results file
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import results  # noqa: E402


def bench_backends() -> ModuleType:
    """``tools/bench_backends.py`` (its per-process runner and configurations), imported as a module."""
    spec = importlib.util.spec_from_file_location("edgecnn_tools_bench_backends", ROOT / "tools" / "bench_backends.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def default_configs() -> str:
    """ORT fp32 and int8, and OpenVINO f32 and int8 when it is installed."""
    configs = ["ort-fp32", "ort-int8"]
    if importlib.util.find_spec("openvino") is not None:
        configs += ["ov-f32", "ov-int8"]
    return ",".join(configs)


def model_facts(name: str, fp32: str) -> dict[str, Any]:
    """Parameters (the torch model's, from the file's metadata), MACs and FLOPs per image (the graph's)."""
    from edgecnn.onnxfile import read_metadata
    from edgecnn.profiler.cost import graph_cost

    cost = graph_cost(fp32, 1)
    meta = read_metadata(fp32)
    depthwise = [lay for lay in cost.layers if lay.depthwise]
    return {"params": int(meta.get("num_params") or cost.params), "macs": cost.macs, "flops": cost.flops,
            "depthwise_layers": len(depthwise),
            "depthwise_macs_share": sum(x.macs for x in depthwise) / max(1, cost.macs)}


def chosen_by_optimize(name: str, out: Path, batch: list[int], threads: int) -> dict[str, Any]:
    """What ``edgecnn.optimize`` ships for ``name`` (synthetic inputs judged by logit SQNR: no dataset here)."""
    from edgecnn.optimize import optimize

    rep = optimize(name, batches=batch, output=out / name, threads=threads, progress=False)
    ch = rep.get("chosen") or {}
    return {k: ch.get(k) for k in ("provider", "precision", "batch", "p50_ms", "speedup_vs_fp32", "kept_float")}


def bench_model(bb: ModuleType, name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One model through bench_backends' runner, with its facts and achieved GFLOP/s."""
    files = bb.prepare(name)
    facts = model_facts(name, files["fp32"])
    ns = argparse.Namespace(model=name, batch=args.batch, warmup=args.warmup, iters=args.iters, threads=args.threads,
                            configs=args.configs)
    res = bb.run(ns)
    for r in res["results"]:
        for row in r.get("rows", []):
            row["achieved_gflops"] = facts["flops"] * row["batch"] / (row["median_ms"] / 1e3) / 1e9
    return {"model": name, **facts, "machine": res["machine"], "results": res["results"]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from edgecnn.models import list_models

    names = args.models.split(",") if args.models else list_models(group="mobile")
    bb = bench_backends()
    out: dict[str, Any] = {"batches": [int(b) for b in args.batch.split(",")], "threads": args.threads,
                           "configs": args.configs.split(","), "models": []}
    for name in names:
        print(f"== {name}", file=sys.stderr)
        entry = bench_model(bb, name, args)
        if args.optimize:
            entry["optimize"] = chosen_by_optimize(name, Path(args.optimize_out), out["batches"], args.threads)
        out["machine"] = entry.pop("machine")
        out["models"].append(entry)
    return out


def render(data: dict[str, Any]) -> str:
    """Markdown: one row per model; per configuration and batch 'ms (x ORT fp32)'; GFLOP/s of ORT fp32 and int8
    (the machine is the results file's header)."""
    batches, configs = data["batches"], data["configs"]
    head = f"{data['threads']} threads; median of the runs, each configuration in its own process"
    cols = ["model", "params", "GMACs", "DW layers (MAC share)"]
    cols += [f"{c} b{b} ms (x fp32)" for c in configs for b in batches]
    cols += [f"{c} b{b} GFLOP/s" for c in ("ort-fp32", "ort-int8") if c in configs for b in batches]
    if any("optimize" in e for e in data["models"]):
        cols.append("optimize picks")
    lines = [head, "", "| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    for e in data["models"]:
        rows = {r["config"]: {row["batch"]: row for row in r.get("rows", [])} for r in e["results"]}
        cells = [e["model"], f"{e['params'] / 1e6:.2f}M", f"{e['macs'] / 1e9:.3f}",
                 f"{e['depthwise_layers']} ({100 * e['depthwise_macs_share']:.0f}%)"]
        for c in configs:
            for b in batches:
                r = rows.get(c, {}).get(b)
                cells.append(f"{r['median_ms']:.2f} ({r['ratio']:.2f}x)" if r and r.get("ratio") else "refused")
        for c in ("ort-fp32", "ort-int8"):
            if c in configs:
                for b in batches:
                    r = rows.get(c, {}).get(b)
                    cells.append(f"{r['achieved_gflops']:.1f}" if r else "")
        if "optimize" in e:
            o = e["optimize"]
            cells.append(f"{o.get('provider')} {o.get('precision')} b{o.get('batch')} ({o.get('speedup_vs_fp32')}x)"
                         if o.get("provider") else "nothing within budget")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=None, help="comma-separated zoo names [default: every mobile model]")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--threads", type=int, default=None, help="default: the CPUs available")
    ap.add_argument("--configs", default=None, help=f"bench_backends configurations [default: {default_configs()}]")
    ap.add_argument("--optimize", action="store_true", help="also run edgecnn.optimize on each model (slow)")
    ap.add_argument("--optimize-out", default="runs/optimize-mobile", help="where --optimize writes its reports")
    ap.add_argument("--json", dest="json_out", help="write the results here")
    ap.add_argument("--render", metavar="JSON", help="(re)write the results file of a saved --json run and exit")
    results.add_arguments(ap)
    args = ap.parse_args(argv)
    if args.render:
        publish(args, results.load(args.render))
        return 0
    if args.threads is None:
        from edgecnn.runtime.engine import default_threads

        args.threads = default_threads()
    args.configs = args.configs or default_configs()
    data = {**run(args), "command": results.command(__file__, argv)}
    if args.json_out:
        results.save(args.json_out, data)
    publish(args, data)
    return 0


def publish(args: argparse.Namespace, data: dict[str, Any]) -> None:
    """Print the results text of a run and write ``mobile`` (unless --no-results)."""
    print(results.write(args, "mobile", "Mobile zoo: fp32 and int8 on ONNX Runtime and OpenVINO", render(data), data))


if __name__ == "__main__":
    sys.exit(main())
