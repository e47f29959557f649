"""The shapes task: train the detector and the segmenter (cached), export them, evaluate the ONNX files.

    python tools/bench_shapes.py --out runs/shapes        # writes docs/results/shapes.md (+ .json)
    python tools/bench_shapes.py --render runs/shapes.json
    python tools/bench_shapes.py --no-ssdlite             # the task's two small models only

Trains (or reads from the cache) ``shapes_ssd`` and ``shapes_lraspp`` on the seeded training scenes
(:mod:`edgecnn.tasks.shapes`), and the SSDlite reference (the zoo's ``ssdlite320_mobilenet_v3_large`` with the
task's 5 classes at 128x128, :func:`~edgecnn.tasks.shapes.ssdlite_on_shapes`), exports them to fp32 ``.onnx``
files (the detectors with NMS in the graph and on the host), and evaluates the files on the held-out test split
exactly as ``edgecnn evaluate`` does: COCO mAP@[.5:.95] and mAP@.5 with pycocotools against ``instances.json``,
mean IoU against the label maps. Training wall times are those of this run (0 when the weights came from the cache:
delete them to measure again).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from edgecnn.profiler.task_accuracy import evaluate_detection, evaluate_segmentation
    from edgecnn.tasks import shapes as S

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    t0 = time.perf_counter()
    task = S.shapes_task(log=print)
    files = task.test
    rows = []
    weights = {"detector": task.detector, "segmenter": task.segmenter}
    training = dict(task.training)
    runs = [("detector", "graph"), ("detector", "host"), ("segmenter", None)]
    if args.ssdlite:
        lite = S.ssdlite_on_shapes(log=print)
        weights["ssdlite"], training["ssdlite"] = lite.path, lite.record
        runs += [("ssdlite", "graph"), ("ssdlite", "host")]
    for kind, nms in runs:
        name = S.MODELS[kind]
        path = out / f"{name}{'-shapes' if kind == 'ssdlite' else ''}{'-host' if nms == 'host' else ''}.onnx"
        S.export_onnx(kind, weights[kind], path, nms=nms or "graph")
        if kind != "segmenter":
            rep = evaluate_detection(path, files.images, files.annotations, threads=args.threads)
        else:
            rep = evaluate_segmentation(path, files.images, files.masks, threads=args.threads)
        row = {"model": name, "nms": nms, "file": str(path), "training": training.get(kind, {}),
               **{k: v for k, v in rep.as_dict().items() if k not in ("model", "images", "labels")}}
        rows.append(row)
        print(" ".join(rep.lines()))
    from edgecnn.models import count_params, create_model, get_spec

    specs = {S.MODELS[k]: {"params": count_params(create_model(S.MODELS[k])), "macs": get_spec(S.MODELS[k]).macs}
             for k in ("detector", "segmenter")}
    if args.ssdlite:
        from edgecnn.graphcost.nodes import count

        host = next(r["file"] for r in rows if r["model"] == S.SSDLITE and r["nms"] == "host")
        # MACs of the exported graph at 128x128 (the zoo's figure is at 320x320)
        specs[S.SSDLITE] = {"params": count_params(S.ssdlite_model()), "macs": count(host).macs_per_image,
                            "input_size": S.SSDLITE_SIZE}
    return {"rows": rows, "specs": specs, "train_scenes": S.TRAIN_SCENES, "test_scenes": S.TEST_SCENES,
            "det_epochs": S.DET_EPOCHS, "seg_epochs": S.SEG_EPOCHS, "data_version": S.DATA_VERSION,
            "recipe_version": S.RECIPE_VERSION,
            "ssdlite": {"scenes": S.SSDLITE_SCENES, "epochs": S.SSDLITE_EPOCHS, "input_size": S.SSDLITE_SIZE,
                        "recipe_version": S.SSDLITE_RECIPE_VERSION, "max_seconds": S.SSDLITE_MAX_SECONDS}
            if args.ssdlite else None, "seconds": round(time.perf_counter() - t0, 1),
            "machine": results.machine(args.threads), "command": results.command(__file__)}


def _seconds(v: float | None, digits: int = 0) -> str:
    return f"{v:.{digits}f}" if v else "?"


def _ssdlite_note(data: dict[str, Any]) -> str:
    lite = data.get("ssdlite")
    row = next((r for r in data["rows"] if r["model"] == "ssdlite320_mobilenet_v3_large"), None)
    if not lite or row is None:
        return ""
    rec = row["training"]
    stopped = (" Its warm-up and cosine schedule runs on the steps or a wall-time budget of "
               f"{lite['max_seconds']:.0f} s, whichever is further along: it did {rec.get('steps')} of "
               f"{rec.get('steps_planned')} steps"
               + (" (the budget ran out first)." if rec.get("stopped_early") else "."))
    load = rec.get("load_average_start"), rec.get("load_average_end")
    loads = (f" Load average while it trained: {load[0]:.1f} at the start, {load[1]:.1f} at the end."
             if None not in load else "")
    return ("\n\nThe SSDlite reference is the zoo's `ssdlite320_mobilenet_v3_large` (torchvision's builder, reduced "
            f"tail, width 1.0) re-headed for background + 4 shapes, trained from random weights at "
            f"{lite['input_size']}x{lite['input_size']} (the scenes' own size; its six feature maps are 8, 4, 2, 1, 1 "
            f"and 1 cells) on the first {lite['scenes']} training scenes for {lite['epochs']} epochs, batch "
            f"{rec.get('batch_size', '?')}, AdamW at {rec.get('lr', '?')} (recipe {lite['recipe_version']}); its MMACs "
            f"are the exported graph's at that size." + stopped + loads)


def render(data: dict[str, Any], args: argparse.Namespace) -> str:
    """The results file: per model, the training time and the fp32 ONNX file's accuracy on the test split."""
    headers = ["model", "input", "NMS", "params", "MMACs", "training s", "fastest epoch s", "mAP@[.5:.95]", "mAP@.5",
               "mAP@.75", "mIoU", "pixel accuracy"]
    body = []
    for r in data["rows"]:
        spec = data["specs"][r["model"]]

        def f(v: Any) -> str:
            return "-" if v is None else f"{v:.4f}"

        size = spec.get("input_size", 128)
        body.append([r["model"], f"{size}x{size}", r["nms"] or "-", f"{spec['params']:,}", f"{spec['macs'] / 1e6:.1f}",
                     _seconds(r["training"].get("seconds")), _seconds(min(r["training"].get("epoch_seconds") or [0]),
                                                                       1), f(r["map"]), f(r["map50"]),
                     f(r["map75"]), f(r["miou"]), f(r["pixel_accuracy"])])
    per = []
    for r in data["rows"]:
        if r["nms"] == "host":
            continue
        what = "AP@[.5:.95]" if r["task"] == "detection" else "IoU"
        per.append(f"{r['model']} {what} per class: " + ", ".join(
            f"{k} {v:.3f}" for k, v in r["per_class"].items() if v is not None))
    notes = (f"fp32 ONNX files on ONNX Runtime CPU, evaluated as `edgecnn evaluate` does on the "
             f"{data['test_scenes']} held-out scenes (seeds from 1,000,000); trained on {data['train_scenes']} "
             f"scenes ({data['det_epochs']} epochs for the detector, {data['seg_epochs']} for the segmenter; data "
             f"version {data['data_version']}, recipe {data['recipe_version']}). Training time is wall time on the "
             "machine below, shared with other work (its load average is in the header); an epoch took from "
             "the fastest epoch's time (the machine free) to several times more (busy), so an unshared 2-core "
             "machine needs about epochs x fastest epoch. Recorded when the weights were trained "
             "(`<weights>.json` beside the cached weights)." + _ssdlite_note(data) + "\n\n" + "\n\n".join(per))
    return results.write(args, "shapes", "The shapes task: fp32 accuracy on held-out scenes",
                         results.table(body, headers), data, notes)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/shapes", help="where the .onnx files are written")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-ssdlite", dest="ssdlite", action="store_false",
                    help="leave out the SSDlite reference (trained once, about ten minutes on 2 cores)")
    results.add_saved_data(ap)
    results.add_arguments(ap)
    args = ap.parse_args(argv)
    data = results.measured(args, measure)
    print(render(data, args))


if __name__ == "__main__":
    main()
