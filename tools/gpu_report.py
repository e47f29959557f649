"""Render the GPU smoke test's table from ``edgecnn bench --json`` files (used by ``tools/gpu_smoke.sh``).

Each file is one ``bench`` run, named ``<model>-<provider>-<precision>-run<N>.json``. The table has one row per
(model, provider, precision, batch): median latency, images/s, the provider that really ran, whether every
node ran on it (``--per-layer`` provider check), and the TensorRT engine build time of the first run next to
the second run's (a second run that reuses the engine cache builds in well under a second). Exit status 1 when
any run fell back to another provider or left nodes on the CPU, so the smoke test fails loudly. The table, with
the machine (GPU and CPU, ``tools/results.py``), goes to ``docs/results/gpu-smoke.md`` (and ``.json``).

    python tools/gpu_report.py --gpu "NVIDIA H100" artifacts/gpu_smoke/*.json
    python tools/gpu_report.py --render docs/results/gpu-smoke.json     # (re)write the results file
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import results  # noqa: E402

_NAME = re.compile(r"^(?P<model>.+)-(?P<provider>cuda|tensorrt)-(?P<precision>fp32|fp16|int8)-run(?P<run>\d+)$")
_EXPECTED = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


def load(paths: list[Path]) -> list[dict[str, Any]]:
    """One record per file: the bench JSON plus model/provider/precision/run parsed from its name."""
    out = []
    for p in sorted(paths):
        m = _NAME.match(p.stem)
        if not m:
            raise SystemExit(f"error: {p.name} is not named <model>-<cuda|tensorrt>-<fp32|fp16|int8>-run<N>.json")
        data = json.loads(p.read_text())
        out.append({**m.groupdict(), "run": int(m["run"]), "data": data})
    return out


def problems(rec: dict[str, Any]) -> list[str]:
    """What went wrong in one run: a provider fallback, nodes off the GPU, warnings."""
    data, want = rec["data"], _EXPECTED[rec["provider"]]
    found = []
    ran = (data.get("providers") or ["?"])[0]
    if ran != want:
        found.append(f"ran on {ran}, not {want}")
    for b in data.get("batches", []):
        check = b.get("provider_check")
        if check and not check.get("ok", True):
            found.append(f"batch {b['batch']}: {check.get('message')}")
    return found


def rows(records: list[dict[str, Any]]) -> list[list[str]]:
    build = {(r["model"], r["provider"], r["precision"], r["run"]): r["data"].get("engine_build_s") for r in records}
    out = []
    for r in records:
        if r["run"] != 1:
            continue
        d = r["data"]
        b1 = build.get((r["model"], r["provider"], r["precision"], 1))
        b2 = build.get((r["model"], r["provider"], r["precision"], 2))
        bad = problems(r)
        for b in d.get("batches", []):
            out.append([r["model"], r["provider"], d.get("precision", r["precision"]), str(b["batch"]),
                        f"{b['latency_ms']['p50']:.2f}", f"{b['throughput']:.0f}",
                        (d.get("providers") or ["?"])[0].replace("ExecutionProvider", ""),
                        "yes" if not bad else "NO",
                        f"{b1:.1f}" if isinstance(b1, (int, float)) else "",
                        f"{b2:.1f}" if isinstance(b2, (int, float)) else ""])
    return out


HEADER = ["model", "provider", "precision", "batch", "p50 ms", "img/s", "ran on", "all nodes on GPU",
          "TRT build s (run 1)", "TRT build s (run 2, cached)"]


def render(records: list[dict[str, Any]]) -> str:
    """Markdown table, problems listed below (the GPU is named in the results file's header)."""
    lines = [results.table(rows(records), HEADER)]
    bad = [f"- {r['model']} {r['provider']} {r['precision']} run {r['run']}: {p}" for r in records
           for p in problems(r)]
    if bad:
        lines += ["", "problems:", *bad]
    return "\n".join(lines)


def slim(record: dict[str, Any]) -> dict[str, Any]:
    """A record without the per-layer rows and node lists (the results file keeps what the table needs)."""
    r = copy.deepcopy(record)
    for b in r["data"].get("batches", []):
        b.pop("layers", None)
        if isinstance(b.get("provider_check"), dict):
            b["provider_check"].pop("nodes", None)
    return r


def publish(args: argparse.Namespace, data: dict[str, Any]) -> str:
    """Write ``gpu-smoke`` (unless --no-results); return the results text."""
    return results.write(args, "gpu-smoke", "GPU smoke test: CUDA and TensorRT, fp32, fp16 and int8",
                         render(data["runs"]), data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--gpu", default="unknown GPU", help="GPU name for the table (nvidia-smi --query-gpu=name)")
    ap.add_argument("--command", default=None, help="the command to name in the results file [default: this one]")
    ap.add_argument("--render", metavar="JSON", help="(re)write the results file from a saved one and exit")
    results.add_arguments(ap)
    args = ap.parse_args(argv)
    if args.render:
        data = results.load(args.render)
    elif args.files:
        data = {"gpu": args.gpu, "runs": [slim(r) for r in load(args.files)],
                "machine": results.machine(gpu=args.gpu), "command": args.command or results.command(__file__, argv)}
    else:
        ap.error("give the bench JSON files (or --render JSON)")
    print(publish(args, data))
    return 1 if any(problems(r) for r in data["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
