"""Benchmark ``edgecnn export`` on this machine and write the results file ``export``.

    .venv/bin/python tools/bench_export.py                    # whole zoo, fp32 and fp16, full size
    .venv/bin/python tools/bench_export.py --models resnet18,googlenet --precisions fp16 --json out.json
    .venv/bin/python tools/bench_export.py --quick            # lenet5 + the end-to-end check: proves the script
    .venv/bin/python tools/bench_export.py --render out.json  # (re)write the results file from a saved run

Per model and precision: export + simplify + (fp16) + write + validate seconds (in-process, model build
excluded), file MB, nodes before/after onnxsim, max abs diff and top-1 agreement against torch fp32.
Then the end-to-end target: ``edgecnn export googlenet --fp16`` from process start to validated file
(a fresh process, as a user runs it), which must take at most 20 s on the 2-core reference machine.
Timings need a quiet CPU: the results header (``tools/results.py``) gives the load average at start and end.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import results  # noqa: E402

E2E_TARGET_S = 20.0


def end_to_end(model: str = "googlenet", extra: tuple[str, ...] = ("--fp16",)) -> dict:
    """Wall time of ``edgecnn export MODEL --fp16`` in a fresh process (imports included)."""
    exe = Path(sys.executable).parent / "edgecnn"
    cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "edgecnn.cli"]),
           "export", model, *extra, "--json", "--force"]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        wall = time.perf_counter() - t0
    ok = proc.returncode == 0
    res = json.loads(proc.stdout) if ok else {}
    return {"command": "edgecnn export " + " ".join([model, *extra]), "seconds": round(wall, 2), "ok": ok,
            "passed": res.get("passed"), "timings": res.get("timings"), "target_s": E2E_TARGET_S,
            "stderr": proc.stderr.strip()[-500:] if not ok else ""}


def render(data: dict[str, Any]) -> str:
    """The markdown table and the end-to-end line."""
    lines = ["| model | precision | seconds | MB | nodes before → after | max abs diff | max rel diff "
             "| top-1 agreement |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in data["rows"]:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['precision']} ERROR | | | | | | {r['error'][:80]} |")
            continue
        diff = "n/a" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.1e}"
        rel = "n/a" if r["max_rel_diff"] is None else f"{r['max_rel_diff']:.1e}"
        top1 = "n/a" if r["top1"] is None else f"{r['top1']:.0%}"
        flag = "" if r["passed"] else " FAILED"
        lines.append(f"| {r['model']} | {r['precision']}{flag} | {r['seconds']:.1f} | {r['mb']:.1f} | "
                     f"{r['nodes_before']} → {r['nodes_after']} | {diff} | {rel} | {top1} |")
    e2e = data.get("end_to_end")
    if e2e:
        verdict = "ok" if e2e["ok"] and e2e["seconds"] <= E2E_TARGET_S else "OVER TARGET" if e2e["ok"] else "FAILED"
        lines += ["", f"End to end: `{e2e['command']}` {e2e['seconds']:.1f} s (target {E2E_TARGET_S:.0f} s): {verdict}"]
        if e2e["stderr"]:
            lines += ["", "```", e2e["stderr"], "```"]
    return "\n".join(lines)


def publish(args: argparse.Namespace, data: dict[str, Any]) -> None:
    """Print the results text of a run and write ``export`` (unless --no-results)."""
    print(results.write(args, "export", "edgecnn export: seconds, size and fidelity per zoo model", render(data),
                        data))


def main(argv: list[str] | None = None) -> int:
    import torch

    from edgecnn.errors import EdgecnnError
    from edgecnn.exporters import ValidationFailed, export
    from edgecnn.models import list_models

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=None, help="comma-separated zoo names (default: the whole zoo)")
    ap.add_argument("--precisions", default="fp32,fp16")
    ap.add_argument("--quick", action="store_true", help="lenet5 only, plus the end-to-end check")
    ap.add_argument("--no-e2e", action="store_true", help="skip the end-to-end googlenet --fp16 check")
    ap.add_argument("--json", default=None, help="also write all results as JSON here")
    ap.add_argument("--render", metavar="JSON", help="(re)write the results file of a saved --json run and exit")
    results.add_arguments(ap)
    args = ap.parse_args(argv)
    if args.render:
        publish(args, results.load(args.render))
        return 0
    models = (["lenet5"] if args.quick else args.models.split(",") if args.models
              else list_models(task="classification"))
    precisions = args.precisions.split(",")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            for precision in precisions:
                torch.manual_seed(0)  # the same random weights run after run
                try:
                    r = export(name, Path(tmp) / f"{name}-{precision}.onnx", precision=precision, progress=False)
                except ValidationFailed as e:
                    r = e.result
                except EdgecnnError as e:
                    rows.append({"model": name, "precision": precision, "error": str(e), "passed": False})
                    print(f"{name} {precision}: ERROR {e}", file=sys.stderr, flush=True)
                    continue
                t = r.timings
                seconds = sum(v for k, v in t.items() if k not in ("total", "build"))
                v = r.validation or {}
                rows.append({"model": name, "precision": precision, "seconds": round(seconds, 2),
                             "mb": round(r.size_bytes / 1e6, 1), "nodes_before": r.nodes_before,
                             "nodes_after": r.nodes_after, "max_abs_diff": v.get("max_abs_diff"),
                             "max_rel_diff": v.get("max_rel_diff"), "top1": v.get("top1_agreement"),
                             "passed": r.passed, "warnings": v.get("warnings", []), "timings": t})
                print(f"{name} {precision}: {seconds:.1f} s, {r.size_bytes / 1e6:.1f} MB, "
                      f"{'passed' if r.passed else 'FAILED'}", file=sys.stderr, flush=True)
                Path(r.path).unlink(missing_ok=True)
                del r
                gc.collect()
    e2e = None if args.no_e2e else end_to_end()

    data = {"rows": rows, "end_to_end": e2e, "machine": results.machine(), "command": results.command(__file__, argv)}
    if args.json:
        results.save(args.json, data)
    publish(args, data)
    failed = [r for r in rows if not r["passed"]] or (e2e and not e2e["ok"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
