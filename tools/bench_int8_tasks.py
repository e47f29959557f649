"""int8 detectors and segmenters benchmark (not a test): fp32 vs naive int8 vs edgecnn's int8, per model.

Four files per model, all calibrated on the same images and measured on the same (other) images:

* ``fp32``: the file itself;
* ``naive int8``: ``quantize`` with default settings, no head handling, no kept layers (``--head-aware off``):
  what users get from ONNX Runtime's quantizer alone;
* ``head-aware int8``: the head rules alone (the decode tail in float, mismatched Concats split:
  ``edgecnn.quantize.heads``), nothing searched;
* ``edgecnn int8``: head-aware and ``--keep-float auto`` against the task's target.

Label-free columns always (matched-box F1 at IoU 0.5 vs fp32 for a detector, pixel agreement for a segmenter, the
worst comparable output's SQNR); labelled columns (mAP@.5, mAP@[.5:.95], mIoU, in points) when ``--metric
MODULE:FUNCTION`` names a labelled evaluation, a ``edgecnn.quantize.taskeval.TaskMetric`` (``path -> {"map50",
"map"}`` or ``{"miou"}``); the kept-float search then keeps mAP@.5 / mIoU within ``--max-drop`` points.

    python tools/bench_int8_tasks.py --model shapes_det.onnx --model shapes_seg.onnx --calib calib/ --eval val/ \\
        --metric edgecnn.tasks.shapes:metric_for --json runs/int8-tasks.json      # docs/results/int8-tasks.md
    python tools/bench_int8_tasks.py --zoo ssdlite320_mobilenet_v3_large --input-size 128 --synthetic 24
    python tools/bench_int8_tasks.py --shapes --json runs/int8-tasks.json       # the trained shapes models
    python tools/bench_int8_tasks.py --render runs/int8-tasks.json

``--shapes``: the shapes task's trained detector (host NMS), segmenter and SSDlite reference
(:mod:`edgecnn.tasks.shapes`), calibrated on training scenes; ``--keep-float auto`` searches against the labelled
metric (mAP@.5 or mIoU within ``--max-drop`` points) on a validation split of its own (seeds disjoint from the
training and test scenes), and every file is reported on the held-out test split: the search never sees it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import results  # noqa: E402

VARIANTS = ("fp32", "naive int8", "head-aware int8", "edgecnn int8")


def _metric(spec: str | None, model: Path) -> Any:
    """The labelled metric named by ``MODULE:FUNCTION``: the function is the metric itself (``path -> dict``), or,
    when it takes a ``model=`` keyword, a factory called with the fp32 file."""
    if not spec:
        return None
    module, _, name = spec.partition(":")
    fn = getattr(importlib.import_module(module), name)
    try:
        return fn(model=model)
    except TypeError:
        return fn


def _pictures(folder: Path, n: int, seed: int) -> str:
    """``n`` seeded pictures of rectangles and ellipses on a plain ground (320x256 PNG) in ``folder``: reproducible
    calibration and evaluation images when no real ones are given (``--synthetic``)."""
    import numpy as np
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def colour() -> tuple[int, ...]:
        return tuple(int(v) for v in rng.integers(0, 256, 3))

    for i in range(n):
        im = Image.new("RGB", (320, 256), colour())
        pen = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(2, 7))):
            x, y = (int(v) for v in rng.integers(0, 260, 2))
            w, h = (int(v) for v in rng.integers(20, 120, 2))
            (pen.rectangle if rng.random() < 0.5 else pen.ellipse)([x, y, x + w, y + h], fill=colour())
        im.save(folder / f"{i:03d}.png")
    return str(folder)


def _sources(args: argparse.Namespace, work: Path) -> list[Path]:
    paths = [Path(p) for p in args.model or []]
    for name in args.zoo or []:
        from edgecnn.exporters import export

        size = (args.input_size, args.input_size) if args.input_size else None
        opts: dict[str, Any] = {"input_size": size} if size else {}
        if name.startswith("ssd"):
            opts["nms"] = args.nms
        paths.append(Path(export(name, work / f"{name}.onnx", progress=False, **opts).path))
    if not paths:
        raise SystemExit("give --model FILE or --zoo NAME")
    return paths


#: first seed of the validation scenes --shapes searches on (training from 0, test from 1,000,000)
VAL_SEED = 2_000_000


def _shapes_sources(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """The shapes task's three trained models, with the calibration folder, the validation split the search uses and
    the test split every file is reported on."""
    from edgecnn.profiler.task_accuracy import labelled_metric
    from edgecnn.tasks import shapes as S

    task = S.shapes_task(log=print)
    ssdlite = S.ssdlite_on_shapes(log=print)
    val = S.write_split(work / "val", args.val_scenes, seed=VAL_SEED)
    out = []
    for kind, weights, name in (("detector", task.detector, "shapes_ssd"), ("segmenter", task.segmenter,
                                                                         "shapes_lraspp"),
                                ("ssdlite", ssdlite.path, "ssdlite_shapes")):
        path = S.export_onnx(kind, weights, work / f"{name}.onnx", nms="host")
        labels: dict[str, Any] = ({"masks": val.masks} if kind == "segmenter" else {"annotations": val.annotations})
        test: dict[str, Any] = ({"masks": task.test.masks} if kind == "segmenter"
                                else {"annotations": task.test.annotations})
        out.append({"path": path, "calib": str(task.calib), "search_images": str(val.images),
                    "search_metric": labelled_metric(val.images, **labels),
                    "report_images": str(task.test.images), "report_metric": labelled_metric(task.test.images, **test),
                    "where": f"the shapes test split ({len(list(Path(task.test.images).iterdir()))} scenes; "
                             f"kept-float search on {args.val_scenes} validation scenes)"})
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Quantize each model three ways (naive, head-aware, edgecnn) and measure the four files."""
    import time

    from edgecnn import onnxfile
    from edgecnn.quantize import QuantizeOptions, quantize, quantize_model
    from edgecnn.quantize.taskeval import compare_task_models
    from edgecnn.quantize.workflow import _target_data, calibration_for
    from edgecnn.runtime.vision import task_of

    work = Path(tempfile.mkdtemp(prefix="bench-int8-tasks-"))
    if args.synthetic:
        args.calib = _pictures(work / "calib", args.synthetic, seed=0)
        args.eval = _pictures(work / "eval", args.synthetic, seed=1)
    rows = []
    if args.shapes:
        sources = _shapes_sources(args, work)
    else:
        sources = [{"path": p, "calib": args.calib, "search_images": args.eval, "report_images": args.eval,
                    "search_metric": (m := _metric(args.metric, p)), "report_metric": m, "where": None}
                   for p in _sources(args, work)]
    labelled = bool(args.metric or args.shapes)
    for source in sources:
        src = Path(source["path"])
        task = task_of(onnxfile.read_metadata(src))
        metric = source["search_metric"]
        calib = calibration_for(src, source["calib"], calib_size=args.calib_size)
        x, _, where = _target_data(src, source["report_images"], None, args.eval_limit, calib, task)
        where = source["where"] or where
        t0 = time.perf_counter()
        naive = quantize(src, work / f"{src.stem}.naive.onnx", calib=calib, options=QuantizeOptions(head="off"))
        t1 = time.perf_counter()
        head = quantize(src, work / f"{src.stem}.head.onnx", calib=calib, options=QuantizeOptions(head="on"))
        run = quantize_model(src, work / f"{src.stem}.edgecnn.onnx", calib=calib, keep_float="auto",
                             task_metric=metric, max_drop_points=args.max_drop if metric else None, report=False,
                             eval_data=source["search_images"], eval_limit=args.eval_limit)
        t2 = time.perf_counter()
        files = {"fp32": src, "naive int8": Path(naive.output), "head-aware int8": Path(head.output),
                 "edgecnn int8": Path(run.result.output)}
        if args.synthetic:
            where = f"{args.synthetic} seeded pictures of shapes (--synthetic; calibrated on {args.synthetic} others)"
        for variant, path in files.items():
            rep = compare_task_models(src, path, x, note=where, metric=source["report_metric"])
            rows.append({"model": str(onnxfile.read_metadata(src).get("model") or src.stem), "task": task,
                         "variant": variant, "metrics": rep.metrics, "labelled": rep.labelled.get("int8"),
                         "size": onnxfile.file_size(path),
                         "kept_float": len(run.keep_float["kept"]) if variant == "edgecnn int8" else 0,
                         "head_nodes": _head_nodes(variant, head.head, run.result.head),
                         "target": run.keep_float["target"] if variant == "edgecnn int8" else None,
                         "quantize_s": {"naive int8": t1 - t0, "edgecnn int8": t2 - t1}.get(variant),
                         "measured_on": where})
    return {"rows": rows, "machine": results.machine(args.threads), "command": results.command(__file__),
            "labelled": labelled}


def _head_nodes(variant: str, head_only: dict[str, Any] | None, searched: dict[str, Any] | None) -> int:
    """How many nodes the head rules kept in float in ``variant``'s file."""
    plan = {"head-aware int8": head_only, "edgecnn int8": searched}.get(variant)
    return len(plan["decisions"]) if plan else 0


def _f(v: Any, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def render(data: dict[str, Any], args: argparse.Namespace) -> str:
    """The results file: one row per model and variant."""
    headers = ["model", "file", "mAP@.5", "mAP@[.5:.95]", "mIoU", "F1 vs fp32 (IoU 0.5)", "pixel agreement %",
               "worst output SQNR dB", "size MB", "in float (head / searched)"]
    body = []
    for r in data["rows"]:
        m, lab = r["metrics"], r.get("labelled") or {}
        body.append([r["model"], r["variant"], _f(lab.get("map50"), ".2f"), _f(lab.get("map"), ".2f"),
                     _f(lab.get("miou"), ".2f"), _f(m.get("matched_f1"), ".3f"),
                     _f(100 * m["pixel_agreement"] if m.get("pixel_agreement") is not None else None, ".2f"),
                     _f(m.get("min_sqnr_db"), ".1f"), f"{r['size'] / 1e6:.2f}",
                     f"{r['head_nodes']} / {r['kept_float']}" if r["variant"] in ("edgecnn int8", "head-aware int8")
                     else "-"])
    targets = sorted({f"{r['model']}: {r['target']}" for r in data["rows"] if r.get("target")})
    where = sorted({r["measured_on"] for r in data["rows"]})
    notes = ("fp32 against itself is the reference row. naive int8: ONNX Runtime's static QDQ quantization with "
             "edgecnn's defaults and no head handling; head-aware int8: the head rules only (nothing searched); "
             "edgecnn int8: head-aware, then --keep-float auto with the "
             "target " + "; ".join(targets) + ". Measured on " + "; ".join(where) + "."
             + ("" if data.get("labelled") else " No labelled metric was given: the mAP and mIoU columns are empty "
                                                 "and the agreement columns are against fp32, not ground truth."))
    return results.write(args, "int8-tasks", "int8 detectors and segmenters: fp32, naive int8, edgecnn int8",
                         results.table(body, headers), data, notes)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="an fp32 detection or segmentation .onnx file (repeatable)")
    ap.add_argument("--zoo", action="append", help="a zoo task model to export first (repeatable)")
    ap.add_argument("--input-size", type=int, default=None, help="with --zoo: square input size")
    ap.add_argument("--nms", default="host", choices=["graph", "host"], help="with --zoo: where a detector's NMS runs")
    ap.add_argument("--calib", default=None, help="calibration images (a folder)")
    ap.add_argument("--synthetic", type=int, default=None, metavar="N",
                    help="instead of --calib/--eval: N seeded pictures of shapes for each (reproducible)")
    ap.add_argument("--calib-size", type=int, default=64)
    ap.add_argument("--eval", default=None, help="evaluation images (a folder; default: the calibration inputs)")
    ap.add_argument("--eval-limit", type=int, default=64)
    ap.add_argument("--metric", default=None, metavar="MODULE:FUNCTION",
                    help="a labelled evaluation (edgecnn.quantize.taskeval.TaskMetric) for mAP / mIoU columns")
    ap.add_argument("--shapes", action="store_true",
                    help="the shapes task's trained detector, segmenter and SSDlite (labelled; see the docstring)")
    ap.add_argument("--val-scenes", type=int, default=100, help="with --shapes: validation scenes for the search")
    ap.add_argument("--max-drop", type=float, default=1.0, help="with --metric: points of mAP@.5 / mIoU allowed")
    ap.add_argument("--threads", type=int, default=None)
    results.add_saved_data(ap)
    results.add_arguments(ap)
    args = ap.parse_args(argv)
    if not args.render and not args.calib and not args.synthetic and not args.shapes:
        ap.error("--calib DIR, --synthetic N or --shapes is needed to measure (or --render JSON)")
    data = results.measured(args, measure)
    print(render(data, args))


if __name__ == "__main__":
    main()
