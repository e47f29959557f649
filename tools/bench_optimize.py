"""Benchmark of ``edgecnn optimize``: ResNet-50 (seeded weights, synthetic inputs, SQNR budget) and LeNet-5 on
the digits task, with their candidate tables. Not a test: run it on a quiet machine.

    python tools/bench_optimize.py                          # resnet50 and lenet5 -> runs/optimize/<model>/
    python tools/bench_optimize.py --models lenet5 --duration 0.2 --results-dir /tmp/results
    python tools/bench_optimize.py --render docs/results/optimize-lenet5.json   # (re)write a results file
    python tools/bench_optimize.py --models ssdlite_shapes --batch 1,8          # the detector, mAP@.5 budget

Each model's summary and candidate table, with the machine (``tools/results.py``), go to
``docs/results/optimize-<model>.md`` (and ``.json``), its ``pareto.png`` to ``optimize-<model>-pareto.png``.

Targets (2-core machine): ``optimize resnet50`` completes in <= 5 minutes and its chosen file is
>= 2.5x faster than fp32 at batch 1 (>= 3x with OpenVINO installed); ``optimize lenet5`` chooses a candidate
within 1 point of fp32 top-1; ``optimize ssdlite_shapes`` (the SSDlite trained on the shapes task, NMS on the host:
calibrated and judged for agreement on 100 validation scenes, mAP@.5 on the 300 test scenes) completes in <= 10
minutes and ships a file faster than fp32 at batch 1 within 1 mAP@.5 point, or fp32 when none is.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import results  # noqa: E402

from edgecnn.optimize.report import plot_pareto, summary_lines, table_markdown  # noqa: E402
from edgecnn.optimize.runner import optimize  # noqa: E402


def check(name: str, report: dict[str, Any], seconds: float) -> list[str]:
    """The issue's targets for ``name`` as 'PASS'/'FAIL' lines (empty for other models)."""
    ch = report.get("chosen") or {}
    out: list[str] = []
    if name == "resnet50":
        ov = "openvino" in report["machine"]["runtimes"] and not any(
            c["provider"] == "openvino" and c["status"].startswith("skipped") for c in report["candidates"])
        need = 3.0 if ov else 2.5
        out.append(f"{'PASS' if seconds <= 300 else 'FAIL'}: completed in {seconds:.0f} s (target <= 300 s)")
        sp = ch.get("speedup_vs_fp32") or 0.0
        out.append(f"{'PASS' if sp >= need else 'FAIL'}: chosen {sp:.2f}x fp32 at batch 1 (target >= {need}x)")
    elif name == "ssdlite_shapes":
        out.append(f"{'PASS' if seconds <= 600 else 'FAIL'}: completed in {seconds:.0f} s (target <= 600 s)")
        sp, drop = ch.get("speedup_vs_fp32") or 0.0, ch.get("accuracy_drop")
        fp32 = ch.get("precision") == "fp32"
        out.append(f"{'PASS' if fp32 or (sp > 1.0 and drop is not None and drop <= 1.0) else 'FAIL'}: chosen "
                   f"{ch.get('provider')} {ch.get('precision')}, {sp:.2f}x fp32 at batch 1, mAP@.5 drop {drop} "
                   "points (target: faster than fp32 within 1 point, or fp32 shipped)")
    elif name == "lenet5":
        drop = ch.get("accuracy_drop")
        ok = drop is not None and drop <= 1.0
        out.append(f"{'PASS' if ok else 'FAIL'}: chosen top-1 drop {drop} points (target <= 1)")
    return out


def render(data: dict[str, Any]) -> str:
    """Markdown of one model: the summary and the targets' verdicts as a list, then the candidate table."""
    lines = [line for line in summary_lines(data["report"]) if not line.startswith("wrote ")]  # a local path
    lines += check(data["model"], data["report"], data["seconds"])
    return "\n".join(f"- {line}" for line in lines) + "\n\n" + table_markdown(data["report"])


def publish(args: argparse.Namespace, data: dict[str, Any]) -> str:
    """Write ``optimize-<model>`` and its ``-pareto.png`` (the run's own picture; drawn again from the report when
    the run's folder is gone) unless --no-results; return the results text."""
    name = f"optimize-{data['model']}"
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(data.get("pareto") or "")
        if not png.is_file():
            png = Path(tmp) / "pareto.png"
            if not plot_pareto(data["report"], png):
                png = None
        link = results.picture(args, png, f"{name}-pareto", f"edgecnn optimize {data['model']}: latency vs "
                               "accuracy of every candidate") if png else ""
    return results.write(args, name, f"edgecnn optimize {data['model']}", render(data), data, notes=link)


def _shapes_ssdlite(out: Path) -> dict[str, Any]:
    """``optimize`` arguments for the SSDlite trained on the shapes task: its host-NMS file, 100 validation scenes
    as data (calibration and agreement) and the test split's COCO mAP as the labelled metric."""
    from edgecnn.profiler.task_accuracy import labelled_metric
    from edgecnn.tasks import shapes as S

    out.mkdir(parents=True, exist_ok=True)
    task = S.shapes_task(log=print)
    path = S.export_onnx("ssdlite", S.ssdlite_on_shapes(log=print).path, out / "ssdlite_shapes.onnx", nms="host")
    val = S.write_split(out / "val", 100, seed=2_000_000)
    return {"model": path, "data": val.images, "budget": 1.0,
            "task_metric": labelled_metric(task.test.images, annotations=task.test.annotations)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet50,lenet5", help="comma-separated zoo names or .onnx files")
    p.add_argument("--out", default="runs/optimize", help="folder for each model's reports and chosen file")
    p.add_argument("--batch", default="1,8")
    p.add_argument("--duration", type=float, default=2.0, help="seconds of timed runs per candidate")
    p.add_argument("--markdown", default=None, help="also write the tables to this Markdown file")
    p.add_argument("--json", action="store_true", help="print each model's data (report, machine) as JSON")
    p.add_argument("--render", metavar="JSON", help="(re)write the results files of a saved run (a results file "
                   "optimize-<model>.json, or what --json printed) and exit")
    results.add_arguments(p)
    a = p.parse_args(argv)
    if a.render:
        saved = results.load(a.render)
        for data in [saved] if "machine" in saved else saved.values():
            print(publish(a, data))
        return 0
    try:
        import torch

        torch.manual_seed(0)  # seeded weights for zoo exports made in this process
    except ImportError:
        pass
    sections: list[str] = []
    reports: dict[str, Any] = {}
    for model in [m.strip() for m in a.models.split(",") if m.strip()]:
        name = Path(model).name.removesuffix(".onnx")
        t0 = time.perf_counter()
        extra = _shapes_ssdlite(Path(a.out)) if model == "ssdlite_shapes" else {"model": model}
        rep = optimize(batches=[int(b) for b in a.batch.split(",")], output=Path(a.out) / name,
                       duration=a.duration, log=lambda m: print(m, file=sys.stderr), **extra)
        seconds = time.perf_counter() - t0
        data = {"model": name, "report": rep, "seconds": seconds, "pareto": str(Path(a.out) / name / "pareto.png"),
                "machine": results.machine(rep.get("threads")), "command": results.command(__file__, argv)}
        reports[name] = data
        text = publish(a, data)
        sections.append(f"## {name}\n\n{render(data)}")
        if not a.json:
            print(text)
    if a.markdown:
        Path(a.markdown).write_text("# edgecnn optimize benchmark\n\n" + "\n\n".join(sections) + "\n")
    if a.json:
        print(json.dumps(reports, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
