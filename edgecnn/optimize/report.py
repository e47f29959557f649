"""What ``edgecnn optimize -o DIR`` writes: the chosen file (its metadata records the decision),
``report.json``, ``report.csv``, ``report.md`` and ``pareto.png`` (latency vs accuracy)."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from edgecnn._io import atomic_write_bytes

#: CSV/Markdown columns: (candidate key, header)
COLUMNS: list[tuple[str, str]] = [
    ("provider", "runtime"), ("precision", "precision"), ("batch", "batch"), ("status", "status"),
    ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("throughput", "img/s"), ("speedup_vs_fp32", "speed-up"),
    ("size_bytes", "size MB"), ("peak_rss_bytes", "peak RSS MB"), ("build_s", "build s"),
    ("accuracy", "top-1 %"), ("top5", "top-5 %"), ("agreement", "agreement %"), ("cosine", "cosine"),
    ("sqnr_db", "SQNR dB"), ("accuracy_drop", "drop pts"), ("within_budget", "in budget"),
    ("kept_float", "kept in float"),
]
#: a detection or segmentation file's accuracy columns, in place of a classifier's top-1 ... cosine
TASK_COLUMNS: list[tuple[str, str]] = [
    ("map50", "mAP@.5"), ("map", "mAP@[.5:.95]"), ("miou", "mIoU"), ("matched_f1", "F1 vs fp32 %"),
    ("pixel_agreement", "pixels agree %"),
]
_CSV_FIELDS = ["provider", "precision", "ran_precision", "batch", "file", "status", "p50_ms", "p99_ms", "mean_ms",
               "throughput", "speedup_vs_fp32", "size_bytes", "peak_rss_bytes", "build_s", "iters", "accuracy", "top5",
               "agreement", "cosine", "sqnr_db", "accuracy_drop", "within_budget", "kept_float", "reference",
               "matched_f1", "pixel_agreement", "map50", "map", "miou", "latency_scope"]


def decision_metadata(report: dict[str, Any]) -> dict[str, Any]:
    """The decision as stored in the chosen file's ``edgecnn.optimize`` metadata key."""
    ch, m = report["chosen"], report["machine"]
    data = report["data"]
    return {
        "runtime": ch["provider"], "precision": ch["precision"], "file_precision": ch["file_precision"],
        "batch": ch["batch"], "threads": report["threads"], "cpu": m["cpu"]["model"], "arch": m["cpu"]["arch"],
        "cpu_flags": m["cpu"]["flags"], "runtime_versions": m["runtimes"], "p50_ms": ch["p50_ms"],
        "speedup_vs_fp32": ch["speedup_vs_fp32"], "kept_float": ch["kept_float"],
        "accuracy": {"metric": report["metric"], "top1": ch["accuracy"], "agreement": ch["agreement"],
                     "sqnr_db": ch["sqnr_db"], "drop_points": ch["accuracy_drop"],
                     "measured_on_real_data": report["accuracy_measured"], "data": data["source"],
                     "samples": data["eval_samples"],
                     **({"task": report["file_task"], "primary_metric": report["budget"].get("primary_metric"),
                         **{k: ch.get(k) for k in ("matched_f1", "pixel_agreement", "map50", "map", "miou")
                            if ch.get(k) is not None}, "latency_scope": ch.get("latency_scope")}
                        if report.get("file_task") not in (None, "classification") else {})},
        "budget": report["budget"]["rule"], "date": report["date"], "edgecnn_version": report["edgecnn_version"],
        "target_arch": report.get("target_arch") or m["cpu"]["arch"],
        "int8_activation_type": report.get("int8_activation_type"),
        "chosen_by": report.get("chosen_by", "latency"),
        "timings_used": report.get("timing_note") is None,
        **({"timing_note": report["timing_note"]} if report.get("timing_note") else {}),
    }


def write_chosen(source: str | os.PathLike, target: str | os.PathLike, decision: dict[str, Any]) -> Path:
    """Copy ``source`` to ``target`` with the decision in its metadata (other metadata kept), atomically."""
    from edgecnn import onnxfile

    model = onnxfile.open_model(source)
    onnxfile.set_metadata(model, {**onnxfile.read_metadata(model), "optimize": decision}, sort=False)
    onnxfile.save(model, target)
    return Path(target)


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in ("size_bytes", "peak_rss_bytes"):
        return f"{value / 1e6:.1f}"
    if key in ("accuracy", "top5", "agreement", "matched_f1", "pixel_agreement"):
        return f"{100 * value:.2f}"
    if key == "kept_float":
        return str(len(value)) if value else ""
    if key == "within_budget":
        return "yes" if value else "no"
    if key == "speedup_vs_fp32":
        return f"{value:.2f}x"
    if isinstance(value, float):
        return f"{value:.4f}" if key == "cosine" else f"{value:.2f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def table_markdown(report: dict[str, Any]) -> str:
    """The candidates as a Markdown table (the chosen one in bold); a task file's columns are its metrics."""
    ch = report.get("chosen")
    columns = COLUMNS
    if report.get("file_task") not in (None, "classification"):
        present = [(k, h) for k, h in TASK_COLUMNS if any(c.get(k) is not None for c in report["candidates"])]
        at = [k for k, _ in COLUMNS].index("accuracy")
        columns = COLUMNS[:at] + present + COLUMNS[[k for k, _ in COLUMNS].index("sqnr_db"):]
    head = "| " + " | ".join(h for _, h in columns) + " |"
    lines = [head, "|" + "|".join(" --- " for _ in columns) + "|"]
    for c in report["candidates"]:
        cells = [_cell(k, c.get(k)) for k, _ in columns]
        if c.get("ran_precision") not in (None, c["precision"]):  # the label did not run: say what did
            cells[[k for k, _ in columns].index("precision")] = f"{c['precision']} (ran {c['ran_precision']})"
        if ch and (c["provider"], c["precision"], c["batch"], c["kept_float"]) == (
                ch["provider"], ch["precision"], ch["batch"], ch["kept_float"]):
            cells = [f"**{x}**" if x not in ("", "-") else x for x in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The decision in a few sentences (also the CLI's output)."""
    out: list[str] = []
    if not report["accuracy_measured"]:
        out.append("WARNING: " + next(n for n in report["notes"] if n.startswith("ACCURACY WAS NOT MEASURED")))
    m = report["machine"]
    labelled = report.get("file_task") not in (None, "classification") and report.get("metric") in ("map50", "miou")
    source = report["data"]["source"] + ("; labelled metric from the annotations given" if labelled else "")
    out.append(f"model {report['model']} on {m['cpu']['model']} ({report['threads']} threads); "
               f"accuracy: {source}; budget: {report['budget']['rule']}")
    ch = report.get("chosen")
    if ch:
        kept = f", {len(ch['kept_float'])} layer(s) kept in float: {', '.join(ch['kept_float'])}" \
            if ch["kept_float"] else ""
        task_acc = ", ".join(f"{name} {ch[k]:.2f}" for k, name in (("map50", "mAP@.5"), ("map", "mAP@[.5:.95]"),
                                                                    ("miou", "mIoU")) if ch.get(k) is not None)
        acc = (f"top-1 {100 * ch['accuracy']:.2f}% ({ch['accuracy_drop']:+.2f} points lost)"
               if ch["accuracy"] is not None else
               f"{task_acc} ({ch['accuracy_drop']:+.2f} points lost)" if task_acc else
               f"matched-box F1 {100 * ch['matched_f1']:.2f}% vs fp32" if ch.get("matched_f1") is not None else
               f"pixel agreement {100 * ch['pixel_agreement']:.2f}%" if ch.get("pixel_agreement") is not None else
               f"agreement {100 * ch['agreement']:.2f}%, SQNR {ch['sqnr_db']} dB" if ch["agreement"] is not None
               else "accuracy not scored")
        sp = f"{ch['speedup_vs_fp32']:.2f}x" if ch["speedup_vs_fp32"] else "?"
        if report.get("timing_note"):  # timings here do not speak for the target: none is shown as a reason
            out.append(f"chosen by accuracy and size for {report['target_arch']}: {ch['provider']} "
                       f"{ch['precision']}{kept} at batch {ch['batch']}: {(ch['size_bytes'] or 0) / 1e6:.2f} MB, {acc} "
                       f"(timed here at p50 {ch['p50_ms']:.2f} ms, which says nothing about the target)")
        else:
            out.append(f"chosen: {ch['provider']} {ch['precision']}{kept} at batch {ch['batch']}: "
                       f"p50 {ch['p50_ms']:.2f} ms, {sp} fp32, {acc}")
        if ch.get("path"):
            out.append(f"wrote {ch['path']}")
    else:
        out.append("chosen: none")
    out.extend(f"note: {n}" for n in report["notes"] if not n.startswith("ACCURACY WAS NOT MEASURED"))
    return out


def render_markdown(report: dict[str, Any]) -> str:
    """``report.md``."""
    parts = [f"# edgecnn optimize: {report['model']}", ""]
    if not report["accuracy_measured"]:
        parts += ["> **" + next(n for n in report["notes"] if n.startswith("ACCURACY WAS NOT MEASURED")) + "**", ""]
    m = report["machine"]
    runtimes = ", ".join(f"{k} {v}" for k, v in m["runtimes"].items())
    flags = ", ".join(m["cpu"]["flags"]) or "no listed flags"
    parts += [f"- machine: {m['cpu']['model']} ({m['cpu']['arch']}; {flags}), {report['threads']} threads; {runtimes}",
              f"- accuracy data: {report['data']['source']}; calibration: {report['data']['calibration']}",
              f"- budget: {report['budget']['rule']}; batches {report['batches']} (optimised for "
              f"{report['primary_batch']}); int8 activations {report['int8_activation_type']}; target "
              f"{report.get('target_arch') or m['cpu']['arch']}, chosen by {report.get('chosen_by', 'latency')}",
              f"- {report['date']}, {report['seconds']} s, edgecnn {report['edgecnn_version']}", ""]
    parts += ["## Decision", ""] + [f"- {line}" for line in summary_lines(report) if not line.startswith("WARNING")]
    kf = report.get("keep_float")
    if kf:
        parts += ["", "## Kept-float search", "",
                  "Plain int8 missed the budget; layers ranked by the SQNR they lose under int8, tried: "
                  + ", ".join(f"{t['keep']} kept ({'within' if t['within_budget'] else 'outside'} budget)"
                              for t in kf["tried"]) + ".",
                  f"Kept in float: {', '.join(kf['kept']) or 'none'}."]
    parts += ["", "## Candidates", "", table_markdown(report), "",
              "p50/p99: latency of one batch; speed-up: fp32 ONNX Runtime CPU p50 / this p50 at the same batch; "
              "peak RSS: the measuring process's peak; each candidate ran in its own process.", ""]
    return "\n".join(parts)


def render_csv(report: dict[str, Any]) -> str:
    """``report.csv``: one row per candidate."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for c in report["candidates"]:
        w.writerow({**c, "kept_float": ";".join(c["kept_float"])})
    return buf.getvalue()


def plot_pareto(report: dict[str, Any], path: str | os.PathLike) -> bool:
    """Latency (p50) vs accuracy of every measured candidate, the chosen one marked; False when matplotlib is
    missing (the ``plot`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    metric = report["metric"]
    key, label = {"top1": ("accuracy", "top-1 accuracy (%)"),
                  "agreement": ("agreement", "top-1 agreement with fp32 (%)"),
                  "sqnr": ("sqnr_db", "logits' SQNR vs fp32 (dB, synthetic inputs)"),
                  "matched_f1": ("matched_f1", "matched-box F1 vs fp32 at IoU 0.5 (%)"),
                  "pixel_agreement": ("pixel_agreement", "pixel agreement with fp32 (%)"),
                  "map50": ("map50", "mAP@.5 (points)"), "miou": ("miou", "mIoU (points)")}[metric]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ch = report.get("chosen")
    for b in report["batches"]:
        pts = [c for c in report["candidates"] if c["status"] == "ok" and c["batch"] == b and c.get(key) is not None]
        ys = [_y(c[key], key) for c in pts]
        ax.scatter([c["p50_ms"] for c in pts], ys, label=f"batch {b}", zorder=2)
        for c, y in zip(pts, ys, strict=True):
            tag = f"{c['provider']} {c['precision']}" + ("+float" if c["kept_float"] else "")
            ax.annotate(tag, (c["p50_ms"], y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if ch and ch.get(key) is not None and ch.get("p50_ms") is not None:
        ax.scatter([ch["p50_ms"]], [_y(ch[key], key)], marker="*", s=260, facecolors="none", edgecolors="red",
                   linewidths=1.5, label="chosen", zorder=3)
    ax.set_xlabel("p50 latency per batch (ms)")
    ax.set_ylabel(label)
    ax.set_title(f"edgecnn optimize: {report['model']}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return True


def _y(value: Any, key: str) -> float:
    if value == "inf":
        return 100.0  # an identical output: drawn at the top of the SQNR axis
    return 100 * float(value) if key in ("accuracy", "agreement", "matched_f1", "pixel_agreement") \
        else min(float(value), 100.0)


#: the report files :func:`write_outputs` writes beside the chosen model
REPORT_FILES = ("report.md", "report.csv", "report.json", "pareto.png")


def write_outputs(report: dict[str, Any], out: Path, chosen_source: Path | None) -> None:
    """Write the chosen file and the four reports into ``out`` (created); updates ``report`` in place
    (the chosen file's absolute path, a note when the plot is skipped)."""
    out.mkdir(parents=True, exist_ok=True)
    if report.get("chosen") and chosen_source is not None:
        target = out / report["chosen"]["path"]
        write_chosen(chosen_source, target, decision_metadata(report))
        report["chosen"]["path"] = str(target.resolve())
    if not plot_pareto(report, out / "pareto.png"):
        report["notes"].append("pareto.png not written: matplotlib is missing (pip install 'edgecnn[plot]').")
    atomic_write_bytes(out / "report.md", render_markdown(report).encode())
    atomic_write_bytes(out / "report.csv", render_csv(report).encode())
    atomic_write_bytes(out / "report.json", (json.dumps(report, indent=2, default=str) + "\n").encode())
