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
    top_k,
)
from edgecnn.cli.output import echo_json, format_table, open_engine
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


@click.command("predict")
@model_source(precision=True)
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@top_k()
@runtime()
@batching(help="[default: the model's fixed batch, or 32 for a dynamic batch]")
@preprocessing()
@reporting()
def predict_cmd(model: str, precision: str, images: tuple[str, ...], top: int, provider: str, device: str | None,
                fallback: bool, batch: int | None, threads: int | None, as_json: bool,
                preprocess: dict[str, Any]) -> None:
    """Classify IMAGE files with MODEL_OR_FILE (an .onnx file, or a zoo name exported on first use).

    Preprocessing (size, grayscale or RGB, mean/std) comes from the file's metadata, else from its input
    shape with ImageNet defaults (said in 'note:' lines; --layout, --size, --bgr, --range, --mean, --std,
    --crop override); ImageNet class names are shown for 1000-class models (--labels for others).

    \b
    Example:
      edgecnn predict resnet18.onnx cat.jpg dog.jpg --top 3
    """
    from edgecnn.runtime import predict

    prepared = prepared_model(model, precision, provider, preprocess=preprocess)
    engine = open_engine(prepared.path, provider=provider, fallback=fallback, threads=threads, max_batch=batch or 32,
                         precision=precision, device=device)
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
@click.option("--data", "data", type=click.Path(), required=True, metavar="DIR",
              help="ImageFolder-layout folder: root/<class>/<image>; labels from the sub-folder names (integer "
                   "names are class indices, otherwise sorted order).")
@runtime(fallback=False, threads=False)
@batching(default=32)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate the first N images only.")
@reference()
@strict_images()
@preprocessing()
@reporting()
def evaluate_cmd(model: str, precision: str, data: str, provider: str, device: str | None, batch: int,
                 limit: int | None, reference: str | None, strict: bool, as_json: bool,
                 preprocess: dict[str, Any]) -> None:
    """Top-1/top-5 accuracy of MODEL_OR_FILE on an ImageFolder of images, batched, on any provider.

    At a reduced precision (an fp16/int8 file, or bf16/fp16 inference on OpenVINO) the run is also compared
    with the fp32 model (ONNX Runtime CPU, else OpenVINO f32): agreement, cosine similarity, SQNR (see --reference).

    \b
    Examples:
      edgecnn evaluate lenet5.int8.onnx --data digits/test --reference lenet5.onnx
      edgecnn evaluate lenet5.onnx --data digits/test --provider openvino --precision bf16
    """
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
