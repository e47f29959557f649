"""``edgecnn predict``, ``evaluate`` and ``bench``: run a model file on ONNX Runtime or OpenVINO."""

from __future__ import annotations

from typing import Any

import click

from edgecnn.cli.options import (
    batching,
    force_option,
    model_source,
    prepared_model,
    preprocessing,
    reference,
    reporting,
    runtime,
    strict_images,
    task_labels,
    top_k,
)
from edgecnn.cli.output import echo_json, format_table, open_engine
from edgecnn.cli.task_eval import evaluate_task
from edgecnn.errors import EdgecnnError
from edgecnn.tables import printable


def _print_predictions(results: list[dict[str, Any]]) -> None:
    for i, r in enumerate(results):
        if i:
            click.echo("")
        click.echo(printable(r["image"], None))
        rows = [{"rank": p["rank"], "label": p["label"], "index": p["index"],
                 "prob": f"{p['probability']:.4f}"} for p in r["predictions"]]
        columns = [("rank", "rank"), ("prob", "probability"), ("index", "class")]
        if any(p["label"] != str(p["index"]) for p in r["predictions"]):
            columns.append(("label", "name"))
        click.echo(format_table(rows, columns))


def _print_task(results: list[dict[str, Any]]) -> None:
    for i, r in enumerate(results):
        if i:
            click.echo("")
        click.echo(f"{printable(r['image'], None)} ({r['size'][0]}x{r['size'][1]})")
        if "detections" in r:
            rows = [{"label": printable(d["label"], 60), "index": d["index"], "score": f"{d['score']:.4f}",
                     "box": ", ".join(f"{v:.1f}" for v in d["box"])} for d in r["detections"]]
            click.echo(format_table(rows, [("label", "class"), ("index", "id"), ("score", "score"),
                                           ("box", "box x1, y1, x2, y2 (image pixels)")]) if rows
                       else "  no detections at or above --min-score")
        else:
            rows = [{"label": printable(c["label"], 60), "index": c["index"], "share": f"{100 * c['share']:.2f}%"}
                    for c in r["classes"]]
            click.echo(format_table(rows, [("label", "class"), ("index", "id"), ("share", "pixels")]))


def _task_options(engine: Any, top_given: bool, preprocess: dict[str, Any], save: str | None) -> None:
    """One error line when an option meets a file of the wrong task."""
    from edgecnn.errors import EdgecnnError

    task = engine.task
    if task == "classification":
        if save is not None:
            raise EdgecnnError("--save draws boxes or masks: it is for detection and segmentation files, and "
                               f"{engine.path.name} is a classifier.")
        return
    if top_given:
        raise EdgecnnError(f"--top ranks a classifier's classes; {engine.path.name} is a {task} model: use "
                           "--min-score (detection) or read the per-class pixel shares (segmentation).")
    labels = preprocess.get("labels")
    classes = engine.metadata.get("num_classes")
    if labels is not None and isinstance(classes, int):
        from edgecnn.io_spec import read_labels

        names = read_labels(labels) if not isinstance(labels, list | tuple) else labels
        if len(names) != classes:
            raise EdgecnnError(f"--labels has {len(names)} names but {engine.path.name} ({task}) has {classes} "
                               "classes: give one name per class, background included.")


@click.command("predict")
@model_source(precision=True)
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@top_k()
@click.option("--min-score", type=click.FloatRange(0, 1), default=0.25, show_default=True,
              help="Detection files: show boxes scoring at least this.")
@click.option("--save", "save", type=click.Path(dir_okay=False), default=None, metavar="OUT.png",
              help="Detection/segmentation files: write the image with its boxes and labels drawn, or its mask "
                   "overlaid (several images: OUT-1.png, OUT-2.png, ...).")
@force_option()
@runtime()
@batching(help="[default: the model's fixed batch, or 32 for a dynamic batch]")
@preprocessing()
@reporting()
def predict_cmd(model: str, precision: str, images: tuple[str, ...], top: int, min_score: float, save: str | None,
                force: bool, provider: str, device: str | None, fallback: bool, batch: int | None,
                threads: int | None, as_json: bool, preprocess: dict[str, Any]) -> None:
    """Classify IMAGE files with MODEL_OR_FILE (an .onnx file, or a zoo name exported on first use), or find
    the objects in them (detection files: class, score, box in the image's pixels) or paint them (segmentation
    files: each class's share of the pixels).

    Preprocessing (size, grayscale or RGB, mean/std) comes from the file's metadata, else from its input
    shape with ImageNet defaults (said in 'note:' lines; --layout, --size, --bgr, --range, --mean, --std,
    --crop override); ImageNet class names are shown for 1000-class models (--labels for others).

    \b
    Examples:
      edgecnn predict resnet18.onnx cat.jpg dog.jpg --top 3
      edgecnn predict ssdlite320_mobilenet_v3_large.onnx street.jpg --save boxes.png
    """
    from edgecnn.runtime import predict

    top_given = click.get_current_context().get_parameter_source("top") != click.core.ParameterSource.DEFAULT
    save_to = None
    if save is not None:
        from edgecnn.outputs import plan_output
        from edgecnn.runtime.vision.run import save_paths

        save_to = [plan_output(p, p.name, force=force, inputs=[model, *images]) for p in save_paths(save, len(images))]
    prepared = prepared_model(model, precision, provider, preprocess=preprocess)
    engine = open_engine(prepared.path, provider=provider, fallback=fallback, threads=threads, max_batch=batch or 32,
                         precision=precision, device=device)
    _task_options(engine, top_given, preprocess, save)
    if engine.task != "classification":
        from edgecnn.runtime.vision.run import predict_task

        results = predict_task(engine, list(images), batch=batch, min_score=min_score, save=save_to, overwrite=force)
        if as_json:
            echo_json({"model": str(prepared.source), "task": engine.task, "providers": list(engine.providers),
                       "precision": engine.precision, "device": engine.device, "results": results,
                       "saved": [str(p) for p in save_to or []], "notices": list(prepared.notices)})
            return
        _print_task(results)
        for p in save_to or []:
            click.echo(f"wrote {p}")
        return
    results = predict(engine, list(images), top=top, batch=batch)
    if as_json:
        echo_json({"model": str(prepared.source), "providers": list(engine.providers), "precision": engine.precision,
                   "precision_reason": engine.info.precision_reason, "auto": engine.info.auto,
                   "device": engine.device, "results": results, "notices": list(prepared.notices)})
    else:
        _print_predictions(results)


def _fp32_comparison(model: str, path: str, rep: Any, folder: Any, reference_file: str | None, **kw: Any) -> Any:
    """The comparison with fp32 (explicit --reference, or found for a reduced precision), or the reason there is
    none (a string)."""
    from edgecnn.profiler.accuracy import compare_models
    from edgecnn.profiler.deviation import find_reference

    ref = find_reference(model, path, ran=rep.precision, file_precision=rep.file_precision, explicit=reference_file)
    if ref is None or ref.path is None:
        return ref.reason if ref else None
    from edgecnn.runtime.backends import reference as reference_backend

    provider = kw.pop("provider")  # the fp32 reference runs on what is installed (ORT CPU, else OpenVINO f32)
    return compare_models(ref.path, path, folder, provider=provider, note=f"reference: {ref.reason}",
                          reference_provider=reference_backend().name, **kw)


@click.command("evaluate")
@model_source(precision=True)
@click.option("--data", "data", type=click.Path(), default=None, metavar="DIR",
              help="ImageFolder-layout folder: root/<class>/<image>; labels from the sub-folder names (integer "
                   "names are class indices, otherwise sorted order). For a detector or segmenter: the image "
                   "folder, as --images.")
@click.option("--images", "images", type=click.Path(), default=None, metavar="DIR",
              help="Detection/segmentation: the folder of images that --annotations or --masks describe.")
@task_labels()
@runtime(fallback=False, threads=False)
@batching(default=32)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate the first N images only.")
@reference()
@strict_images()
@preprocessing()
@reporting()
def evaluate_cmd(model: str, precision: str, data: str | None, images: str | None, annotations: str | None,
                 masks: str | None, provider: str, device: str | None, batch: int, limit: int | None,
                 reference: str | None, strict: bool, as_json: bool, preprocess: dict[str, Any]) -> None:
    """Accuracy of MODEL_OR_FILE, batched, on any provider: top-1/top-5 on an ImageFolder for a classifier, COCO
    mAP for a detector (--annotations), mean IoU for a segmenter (--masks).

    At a reduced precision (an fp16/int8 file, or bf16/fp16 inference on OpenVINO) the run is also compared
    with the fp32 model (ONNX Runtime CPU, else OpenVINO f32): agreement, cosine similarity, SQNR (see --reference).
    A detector or segmenter with only --reference is measured against it: box F1 at IoU 0.5, pixel agreement, SQNR.

    \b
    Examples:
      edgecnn evaluate lenet5.int8.onnx --data digits/test --reference lenet5.onnx
      edgecnn evaluate lenet5.onnx --data digits/test --provider openvino --precision bf16
      edgecnn evaluate shapes_ssd.onnx --images test/images --annotations test/instances.json
      edgecnn evaluate shapes_lraspp.onnx --images test/images --masks test/masks
      edgecnn evaluate shapes_ssd.int8.onnx --images test/images --reference shapes_ssd.onnx
    """
    if images is not None or annotations is not None or masks is not None:
        return evaluate_task(model, precision, images or data, annotations, masks, provider, device, batch, limit,
                             reference, as_json, preprocess)
    if data is None:
        raise EdgecnnError("evaluate needs --data DIR (an ImageFolder) for a classifier, or --images DIR with "
                           "--annotations FILE (detection), --masks DIR (segmentation) or --reference FILE.")
    from edgecnn.profiler.accuracy import evaluate
    from edgecnn.quantize.calibration import show_progress
    from edgecnn.runtime.datasets import load_image_folder

    quiet = not show_progress(quiet=as_json)
    prepared = prepared_model(model, precision, provider, preprocess=preprocess)
    ref = prepared_model(reference, preprocess=preprocess, label="reference", said=prepared.notices) if reference \
        else None
    folder = load_image_folder(data, strict=strict)
    kw = {"provider": provider, "batch_size": batch, "limit": limit, "quiet": quiet}
    rep = evaluate(prepared.path, folder, precision=precision, device=device, **kw)
    rep.model = str(prepared.source)  # the user's file, not its normalised copy
    cmp = _fp32_comparison(model, prepared.path, rep, folder, ref.path if ref else None, precision=precision,
                           device=device, **kw)
    if as_json:
        extra = {} if cmp is None else {"comparison_missing": cmp} if isinstance(cmp, str) else {
            "comparison": cmp.as_dict()}
        echo_json({**rep.as_dict(), **extra,
                   "notices": list(prepared.notices) + (list(ref.notices) if ref else [])})
        return
    click.echo(f"{rep.model} on {rep.data}: {rep.samples} images, {rep.classes} classes, {rep.provider}, "
               f"{rep.precision}")
    click.echo(f"  top-1 {100 * rep.top1:.2f}%   top-5 {100 * rep.top5:.2f}%   "
               f"({rep.images_per_second:.0f} images/s at batch {rep.batch_size}, preprocessing included)")
    if cmp is not None:
        click.echo("\n" + ("\n".join(cmp.lines()) if not isinstance(cmp, str) else cmp))


@click.command("bench")
@model_source(precision=True)
@runtime()
@batching(sweep=True, default="1")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True,
              help="Untimed runs before timing each batch size.")
@click.option("--iters", type=click.IntRange(min=1), default=None,
              help="Timed runs per batch size [default: run for --duration].")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds of timed runs per batch size [default: 2].")
@click.option("--compare", type=click.Choice(["torch"]), default=None,
              help="Also time the same model in torch eager (same threads, same inputs).")
@click.option("--per-layer", is_flag=True, help="Add ORT's per-layer profile: time, GFLOP/s, % of peak, provider.")
@click.option("--peak-gflops", type=float, default=None, help="Peak GFLOP/s for efficiency (default: measured once "
              "per machine and provider by a large MatMul and a 3x3 conv in ORT, cached).")
@click.option("--refresh-peak", is_flag=True, help="Measure the peak again instead of using the cached value.")
@reference()
@click.option("--no-deviation", "no_deviation", is_flag=True,
              help="At a reduced precision, skip the comparison with fp32 (ONNX Runtime CPU, else OpenVINO "
                   "f32) on the same inputs.")
@reporting()
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write latency/throughput vs batch size (and a roofline with --per-layer) to this PNG.")
@force_option()
@preprocessing()
def bench_cmd(model: str, precision: str, provider: str, device: str | None, fallback: bool, threads: int | None,
              batch: list[int], no_deviation: bool, as_json: bool, plot_path: str | None, force: bool,
              preprocess: dict[str, Any], **timing: Any) -> None:
    """Measure latency, throughput, memory and efficiency of MODEL_OR_FILE on any --provider.

    For each batch size: latency mean/std/min/p50/p90/p95/p99/max (ms), throughput (images/s), the
    coefficient of variation (warns when too noisy), process RSS peak and growth, theoretical GFLOPs per
    image, achieved GFLOP/s (FLOPs / p50 latency) and efficiency = achieved / peak. --threads also sets
    torch's threads for --compare torch. At a reduced precision (fp16, bf16, int8) also the deviation from
    fp32 (ONNX Runtime CPU, else OpenVINO f32) on the same seeded inputs: cosine, SQNR, max relative error,
    top-1 agreement. --precision auto says what it measured and chose.

    \b
    Examples:
      edgecnn bench resnet50 --batch 1,8 --compare torch
      edgecnn bench model.onnx --provider cuda --batch 1,8,32 --json
      edgecnn bench vgg16 --per-layer --plot vgg16.png
    """
    from edgecnn.profiler import report
    from edgecnn.profiler.measure import bench

    if plot_path:
        from edgecnn.outputs import plan_output

        plot_path = str(plan_output(plot_path, "bench.png", force=force, inputs=[model]))  # before the benchmark
    prepared = prepared_model(model, precision, provider, preprocess=preprocess)
    result = bench(prepared.path if prepared.copied else model, batch, provider=provider, precision=precision,
                   device=device, threads=threads, fallback=fallback, progress=False if as_json else None,
                   compare_fp32=not no_deviation, **timing)
    if plot_path:
        from edgecnn.profiler.plot import plot_bench

        plot_bench(result, plot_path, overwrite=force)
    if as_json:
        echo_json({**result.to_dict(), "notices": list(prepared.notices)})
        return
    click.echo(report.bench_text(result))
    if plot_path:
        click.echo(f"plot: {plot_path}")


COMMANDS = [predict_cmd, evaluate_cmd, bench_cmd]
