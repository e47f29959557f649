"""The ``edgecnn`` command: thin click commands over models, exporters, runtime and profiler.

Argument parsing and printing only; the work lives in the four parts. Every user error ends in one
line on stderr and a non-zero exit (a traceback only with ``--debug``).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from edgecnn import __version__
from edgecnn.errors import EdgecnnError

_DEBUG = False


def echo_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON on stdout."""
    click.echo(json.dumps(obj, indent=2, default=str))


def format_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """Render rows as a plain aligned text table; ``columns`` is [(key, header), ...]."""
    cells = [[h for _, h in columns]] + [["" if r.get(k) is None else str(r.get(k)) for k, _ in columns]
                                          for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if c.replace(",", "").replace(".", "").isdigit() else c.ljust(w)
                         for c, w in zip(row, widths, strict=True)).rstrip()

    lines = [fmt(cells[0]), "  ".join("-" * w for w in widths)] + [fmt(r) for r in cells[1:]]
    return "\n".join(lines)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="edgecnn")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """edgecnn: export classic CNNs to ONNX, run them on ONNX Runtime, and profile them.

    \b
    Typical flow:
      edgecnn list                          # the reference zoo
      edgecnn export resnet18 --fp16        # torch -> validated, self-describing .onnx
      edgecnn bench resnet18 --batch 1,8    # latency/throughput vs theoretical FLOPs
    """
    global _DEBUG
    _DEBUG = debug


# --------------------------------------------------------------------------- models


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_cmd(as_json: bool) -> None:
    """List the reference models, classic then mobile: name, family, input, parameters, GMACs, torchvision
    compatibility, paper."""
    from edgecnn.models import GROUPS, describe_all

    rows = describe_all()
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        r["input"] = "x".join(str(v) for v in r["input_shape"])
        r["params"] = f"{r['inference_params']:,}"
        if r["num_params"] != r["inference_params"]:
            r["params"] += f" (+{r['num_params'] - r['inference_params']:,} train-only)"
        r["gmacs"] = f"{r['gmacs']:.3f}" if r["gmacs"] >= 0.001 else f"{r['gmacs']:.4f}"
        r["tv"] = "yes" if r["torchvision_compatible"] else "no"
    columns = [("name", "name"), ("family", "family"), ("input", "input"), ("params", "parameters"),
               ("gmacs", "GMACs"), ("tv", "torchvision"), ("reference", "reference")]
    click.echo("\n\n".join(f"{group} models\n" + format_table([r for r in rows if r["group"] == group], columns)
                           for group in GROUPS))


# --------------------------------------------------------------------------- runtime

_PROVIDER_HELP = ("Execution provider: auto (best available: TensorRT > CUDA > CPU), cpu, cuda or tensorrt. "
                  "GPU providers need onnxruntime-gpu (see 'edgecnn doctor').")


def _model_file(model: str) -> str:
    """An existing .onnx path as is; otherwise a zoo name exported (and cached) on first use."""
    import os

    if os.path.isfile(model):
        return model
    if os.path.exists(model) or model.endswith(".onnx") or os.sep in model:
        raise EdgecnnError(f"model file not found: {model}" if not os.path.exists(model)
                           else f"not a file: {model} (expected an .onnx file or a zoo name)")
    try:
        from edgecnn.exporters.cache import cached_export
    except ImportError:
        raise EdgecnnError(f"{model!r} is not an .onnx file; zoo names need the export extra: "
                           "pip install 'edgecnn[export]'") from None
    return str(cached_export(model, precision="fp32"))


def _open_engine(path: str, **kwargs: Any) -> Any:
    """Build an Engine, printing provider-fallback warnings as one 'warning:' line on stderr."""
    import warnings

    from edgecnn.runtime import Engine, ProviderFallbackWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ProviderFallbackWarning)
        engine = Engine(path, **kwargs)
    for w in caught:
        if issubclass(w.category, ProviderFallbackWarning):
            click.echo(f"warning: {w.message}", err=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return engine


@cli.command("predict")
@click.argument("model", metavar="MODEL_OR_FILE")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@click.option("--top", "-k", type=click.IntRange(min=1), default=5, show_default=True,
              help="How many classes to print per image, best first.")
@click.option("--provider", type=click.Choice(["auto", "cpu", "cuda", "tensorrt"]), default="auto",
              show_default=True, help=_PROVIDER_HELP)
@click.option("--fallback", is_flag=True,
              help="If --provider is not available, warn and run on the best available one instead of failing.")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Images per inference run [default: the model's fixed batch, or 32 for a dynamic batch].")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for ONNX Runtime [default: all CPUs available to this process].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def predict_cmd(model: str, images: tuple[str, ...], top: int, provider: str, fallback: bool,
                batch: int | None, threads: int | None, as_json: bool) -> None:
    """Classify IMAGE files with MODEL_OR_FILE (an .onnx file, or a zoo name exported on first use).

    Preprocessing (size, grayscale or RGB, mean/std) comes from the file's metadata; ImageNet class
    names are shown for 1000-class models, class indices otherwise.

    \b
    Example:
      edgecnn predict resnet18.onnx cat.jpg dog.jpg --top 3
    """
    from edgecnn.runtime import predict

    path = _model_file(model)
    engine = _open_engine(path, provider=provider, fallback=fallback, threads=threads,
                          max_batch=batch or 32)
    results = predict(engine, list(images), top=top, batch=batch)
    if as_json:
        echo_json({"model": path, "providers": list(engine.providers), "results": results})
        return
    for i, r in enumerate(results):
        if i:
            click.echo("")
        click.echo(r["image"])
        rows = [{"rank": p["rank"], "label": p["label"], "index": p["index"],
                 "prob": f"{p['probability']:.4f}"} for p in r["predictions"]]
        columns = [("rank", "rank"), ("prob", "probability"), ("index", "class")]
        if any(p["label"] != str(p["index"]) for p in r["predictions"]):
            columns.append(("label", "name"))
        click.echo(format_table(rows, columns))


@cli.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor_cmd(as_json: bool) -> None:
    """Check the install: versions, onnxruntime build and providers, GPU, driver, CPU int8 support, fixes."""
    from edgecnn.runtime.doctor import collect, format_report

    report = collect()
    if as_json:
        echo_json(report)
    else:
        click.echo(format_report(report))


# --------------------------------------------------------------------------- quantization


def _quant_source(model: str) -> tuple[str, bool]:
    """(path, is_zoo_name): an .onnx file as is, a zoo name exported to fp32 (cached) first."""
    import os

    return _model_file(model), not os.path.isfile(model)


def _echo_warnings(caught: list[Any]) -> None:
    """Print caught warnings as one loud line each on stderr (random calibration first)."""
    from edgecnn.exporters.calibration import RandomCalibrationWarning

    for w in caught:
        if issubclass(w.category, RandomCalibrationWarning):
            click.secho(f"WARNING: {w.message}", err=True, fg="yellow", bold=True)
        elif issubclass(w.category, (RuntimeWarning, UserWarning)):
            click.echo(f"warning: {w.message}", err=True)


def _explain_rows(rows: list[Any], top: int) -> list[dict[str, Any]]:
    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    return [{"rank": i + 1, "node": r.node, "op": r.op_type, "loss": f(r.loss_db), "w": f(r.weight_sqnr_db),
             "in": f(r.input_sqnr_db), "out": f(r.output_sqnr_db)} for i, r in enumerate(rows[:top])]


def _export_int8(fp32_path: str, calib: str | None, quiet: bool) -> dict[str, Any]:
    """'edgecnn export NAME --int8': quantize the fresh fp32 export beside it; quantize + report as a dict."""
    import warnings

    from edgecnn.exporters import quantize as Q
    from edgecnn.exporters.calibration import show_progress
    from edgecnn.profiler.accuracy import compare_models

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = Q.quantize(fp32_path, calib=calib or "random:32", progress=show_progress(quiet))
        rep = compare_models(fp32_path, res.output, res.calib_data, quiet=True,
                             note="measured on the calibration data (use 'edgecnn quantize --eval DIR')")
    _echo_warnings(caught)
    return {"quantize": res.as_dict(), "report": rep.as_dict()}


def _print_export_int8(quant: dict[str, Any]) -> None:
    q, r = quant["quantize"], quant["report"]
    click.echo(f"int8: {q['output']} ({q['size_output'] / 1e6:.2f} MB, {q['compression']:.2f}x smaller), "
               f"top-1 agreement {100 * r['top1_agreement']:.1f}%, SQNR {r['sqnr_db']} dB on {r['samples']} "
               f"calibration inputs{' (random: speed tests only)' if q['calibration_random'] else ''}")


@cli.command("quantize")
@click.argument("model", metavar="MODEL_OR_FILE")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Output file [default: <name>.int8.onnx beside the input, or in the current folder for a "
                   "zoo name].")
@click.option("--calib", default=None, metavar="DIR|FILE.npy|random:N",
              help="Calibration data (static mode): a folder of images (preprocessed as the runtime does), an "
                   "N x C x H x W .npy file, or random:N (speed tests only).")
@click.option("--calib-size", type=click.IntRange(min=1), default=128, show_default=True,
              help="Use at most this many calibration samples.")
@click.option("--eval", "eval_data", type=click.Path(), default=None, metavar="DIR",
              help="Evaluation images for the accuracy report, independent of the calibration set: an "
                   "ImageFolder (root/<class>/<image>: accuracies) or a flat folder (agreement with fp32). "
                   "Without it the report reuses the calibration data and says so.")
@click.option("--eval-limit", type=click.IntRange(min=1), default=None, help="Evaluate at most N images.")
@click.option("--mode", type=click.Choice(["static", "dynamic"]), default="static", show_default=True,
              help="static: calibrated activation ranges (fast on CPU). dynamic: ranges at run time; "
                   "convolutions become ConvInteger, several times SLOWER than fp32 on CPU.")
@click.option("--format", "fmt", type=click.Choice(["qdq", "qoperator"]), default="qdq", show_default=True,
              help="Static graph format: QuantizeLinear/DequantizeLinear pairs, or QLinear* operators.")
@click.option("--per-tensor", is_flag=True, help="One scale per weight tensor instead of per output channel.")
@click.option("--method", type=click.Choice(["minmax", "entropy", "percentile"]), default="minmax",
              show_default=True, help="Calibration method for activation ranges.")
@click.option("--activation-type", type=click.Choice(["uint8", "int8"]), default="uint8", show_default=True,
              help="Activation type. uint8 is the fast one on x86 CPUs; TensorRT needs int8 with --symmetric.")
@click.option("--weight-type", type=click.Choice(["int8", "uint8"]), default="int8", show_default=True,
              help="Weight type.")
@click.option("--symmetric", is_flag=True, help="Symmetric activation ranges (zero point 0).")
@click.option("--exclude", multiple=True, metavar="NODE[,NODE...]",
              help="Keep these nodes in float (repeatable or comma-separated; names as --explain lists them).")
@click.option("--keep-float", type=click.IntRange(min=1), default=None, metavar="N",
              help="Rank layers by quantization error (QDQ debugging) and re-quantize with the N worst in float.")
@click.option("--explain", is_flag=True,
              help="Rank the layers whose quantization error is largest (onnxruntime qdq_loss_debug).")
@click.option("--explain-top", type=click.IntRange(min=1), default=10, show_default=True,
              help="Rows of the --explain ranking to print.")
@click.option("--tensorrt", "trt", is_flag=True,
              help="Also write the TensorRT calibration table (calibration.flatbuffers/.cache/.json) for the "
                   "fp32 model, for ONNX Runtime's TensorRT provider in int8 mode.")
@click.option("--no-report", is_flag=True, help="Skip the accuracy report.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (no progress bars).")
def quantize_cmd(model: str, output: str | None, calib: str | None, calib_size: int, eval_data: str | None,
                 eval_limit: int | None, mode: str, fmt: str, per_tensor: bool, method: str, activation_type: str,
                 weight_type: str, symmetric: bool, exclude: tuple[str, ...], keep_float: int | None,
                 explain: bool, explain_top: int, trt: bool, no_report: bool, as_json: bool) -> None:
    """Quantize MODEL_OR_FILE (an fp32 .onnx file or a zoo name) to int8, then report its accuracy cost.

    Static post-training quantization in QDQ format with per-channel int8 weights and uint8
    activations by default (ONNX Runtime's quant_pre_process runs first). The accuracy report
    compares the int8 model with fp32: top-1/top-5 accuracy (labelled --eval data), top-1/top-5
    agreement, cosine similarity and SQNR of the logits, file sizes.

    \b
    Examples:
      edgecnn quantize lenet5.onnx --calib digits/train --eval digits/test
      edgecnn quantize resnet50.onnx --calib random:32 --no-report     # speed tests only
      edgecnn quantize resnet50.onnx --calib imgs/ --explain --keep-float 2
      edgecnn quantize resnet50.onnx --mode dynamic
    """
    import warnings
    from pathlib import Path

    from edgecnn.exporters import quantize as Q
    from edgecnn.exporters.calibration import show_progress

    progress = show_progress(quiet=as_json)
    src, zoo = _quant_source(model)
    out = Path(output) if output else (Path(f"{model}.int8.onnx") if zoo else Q.default_output(src))
    names = tuple(n.strip() for item in exclude for n in item.split(",") if n.strip())
    opts = Q.QuantizeOptions(mode=mode, format=fmt, per_channel=not per_tensor, method=method,
                             activation_type=activation_type, weight_type=weight_type,
                             symmetric_activations=symmetric, exclude=names, calib_size=calib_size)
    if mode == "dynamic" and calib:
        raise EdgecnnError("--calib is for static quantization; dynamic quantization needs no calibration data.")
    payload: dict[str, Any] = {}
    ranking: list[Any] | None = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        calib_data = None
        if mode == "static":
            if calib is None:
                raise EdgecnnError("static quantization needs calibration data: --calib DIR (images), "
                                   "--calib FILE.npy, or --calib random:N (speed tests only).")
            import onnx

            calib_data = Q.load_calibration(calib, Q.preprocess_config(onnx.load(src, load_external_data=False)),
                                            limit=calib_size)
        _echo_warnings(caught)
        caught.clear()
        eval_x = None
        if keep_float:
            ranking_holder: list[Any] = []
            result, ranking = Q.quantize_keep_float(src, out, keep_float=keep_float, calib=calib_data, options=opts,
                                                    progress=progress, on_ranking=ranking_holder.extend)
        else:
            result = Q.quantize(src, out, calib=calib_data, options=opts, progress=progress)
        if explain and ranking is None:
            if mode != "static" or fmt != "qdq":
                raise EdgecnnError("--explain needs static QDQ quantization (the default --mode/--format).")
            assert result.calib_data is not None
            eval_x = result.calib_data
            ranking = Q.explain(src, result.output, eval_x)
        if trt:
            payload["tensorrt"] = Q.write_tensorrt_calibration(
                src, calib_data if calib_data is not None else "random:32",
                Q.default_output(out, "trt-calib").with_suffix(""), method=method, calib_size=calib_size,
                progress=progress)
        report = None
        if not no_report:
            from edgecnn.profiler.accuracy import compare_models

            if eval_data:
                report = compare_models(src, result.output, eval_data, limit=eval_limit, quiet=not progress)
            elif result.calib_data is not None:
                note = ("random calibration data reused: agreement on noise, not accuracy"
                        if result.calibration_random else
                        "no --eval data: measured on the calibration data (not independent)")
                report = compare_models(src, result.output, result.calib_data, limit=eval_limit,
                                        quiet=not progress, note=note)
            else:  # dynamic mode without --eval: nothing but random inputs to compare on
                import numpy as np
                import onnx

                cfg = Q.preprocess_config(onnx.load(src, load_external_data=False))
                x = np.random.default_rng(0).standard_normal((32, cfg.channels, *cfg.input_size), dtype=np.float32)
                report = compare_models(src, result.output, x, quiet=not progress,
                                        note="no --eval data: agreement with fp32 on random inputs only")
    _echo_warnings([w for w in caught if "random calibration" not in str(w.message)])
    payload = {"quantize": result.as_dict(), **payload}
    if report is not None:
        payload["report"] = report.as_dict()
    if ranking is not None:
        payload["explain"] = [r.as_dict() for r in ranking]
    if as_json:
        echo_json(payload)
        return
    nodes = ", ".join(f"{k} {v}" for k, v in result.quant_nodes.items()) or "none"
    click.echo(f"wrote {result.output} ({result.size_output / 1e6:.2f} MB, {result.compression:.2f}x smaller than "
               f"{Path(result.source).name}) in {result.seconds:.1f} s")
    click.echo(f"  {mode}, {fmt if mode == 'static' else 'dynamic'}, "
               f"{'per-tensor' if per_tensor else 'per-channel'} {weight_type} weights, "
               f"{activation_type} activations" + (f", {method} calibration on {result.calibration}"
                                                    if mode == "static" else ""))
    click.echo(f"  quantization nodes: {nodes}")
    if result.excluded:
        click.echo(f"  kept in float: {', '.join(result.excluded)}")
    if ranking is not None:
        click.echo(f"\nlayers ranked by quantization error (SQNR in dB vs fp32; loss = input - output), "
                   f"worst {min(explain_top, len(ranking))} of {len(ranking)}:")
        click.echo(format_table(_explain_rows(ranking, explain_top),
                                [("rank", "#"), ("node", "node"), ("op", "op"), ("loss", "loss dB"),
                                 ("w", "weight dB"), ("in", "input dB"), ("out", "output dB")]))
    if "tensorrt" in payload:
        t = payload["tensorrt"]
        click.echo(f"\nTensorRT calibration table ({t['tensors']} tensors) in {t['dir']}; run the fp32 model with "
                   f"Engine(..., provider='tensorrt', provider_options={{'tensorrt': {t['provider_options']}}})")
    if report is not None:
        click.echo("")
        click.echo("\n".join(report.lines()))
    if result.calibration_random:
        click.secho("WARNING: calibrated on random data: use this model for speed tests only.", err=True,
                    fg="yellow", bold=True)


@cli.command("evaluate")
@click.argument("model", metavar="MODEL_OR_FILE")
@click.option("--data", "data", type=click.Path(), required=True, metavar="DIR",
              help="ImageFolder-layout folder: root/<class>/<image>; labels from the sub-folder names (integer "
                   "names are class indices, otherwise sorted order).")
@click.option("--provider", type=click.Choice(["auto", "cpu", "cuda", "tensorrt"]), default="cpu",
              show_default=True, help=_PROVIDER_HELP)
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True, help="Images per run.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate the first N images only.")
@click.option("--reference", type=click.Path(dir_okay=False), default=None, metavar="FP32.onnx",
              help="Also compare with this (fp32) model: agreement, cosine similarity, SQNR, sizes.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (no progress bar).")
def evaluate_cmd(model: str, data: str, provider: str, batch: int, limit: int | None, reference: str | None,
                 as_json: bool) -> None:
    """Top-1/top-5 accuracy of MODEL_OR_FILE on an ImageFolder of images, batched, on any provider.

    \b
    Example:
      edgecnn evaluate lenet5.int8.onnx --data digits/test --reference lenet5.onnx
    """
    from edgecnn.exporters.calibration import show_progress
    from edgecnn.profiler.accuracy import compare_models, evaluate
    from edgecnn.runtime.datasets import load_image_folder

    quiet = not show_progress(quiet=as_json)
    path = _model_file(model)
    folder = load_image_folder(data)
    rep = evaluate(path, folder, provider=provider, batch_size=batch, limit=limit, quiet=quiet)
    cmp = compare_models(reference, path, folder, provider=provider, batch_size=batch, limit=limit,
                         quiet=quiet) if reference else None
    if as_json:
        echo_json({**rep.as_dict(), **({"comparison": cmp.as_dict()} if cmp else {})})
        return
    click.echo(f"{rep.model} on {rep.data}: {rep.samples} images, {rep.classes} classes, {rep.provider}")
    click.echo(f"  top-1 {100 * rep.top1:.2f}%   top-5 {100 * rep.top5:.2f}%   "
               f"({rep.images_per_second:.0f} images/s at batch {rep.batch_size}, preprocessing included)")
    if cmp is not None:
        click.echo("")
        click.echo("\n".join(cmp.lines()))


# --------------------------------------------------------------------------- profiler


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise EdgecnnError(f"{what} must be comma-separated integers like 1,8,32, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise EdgecnnError(f"{what} must be integers >= 1, got {text!r}")
    return values


@cli.command("profile")
@click.argument("model_or_file")
@click.option("--batch", type=int, default=None,
              help="Batch size the costs are computed at (default: the file's fixed batch, else 1).")
@click.option("--per-layer", is_flag=True, help="Print the per-layer table (a conv with its activation is one row).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (totals and layers).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Write the per-layer table as CSV to this file ('-' for stdout).")
@click.option("--nodes", is_flag=True, help="With --json: include every ONNX node.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default="fp32", show_default=True,
              help="For zoo names: which export to profile.")
@click.option("--measure", is_flag=True,
              help="Also run the model with ONNX Runtime's profiler and join measured time per layer.")
@click.option("--provider", default="cpu", show_default=True, help="With --measure: cpu, cuda, tensorrt or auto.")
@click.option("--threads", type=int, default=None, help="With --measure: intra-op threads (default: all CPUs).")
@click.option("--iters", type=int, default=10, show_default=True, help="With --measure: profiled runs.")
@click.option("--peak-gflops", type=float, default=None, help="With --measure: peak GFLOP/s for %% of peak.")
def profile_cmd(model_or_file: str, batch: int, per_layer: bool, as_json: bool, csv_path: str | None, nodes: bool,
                precision: str, measure: bool, provider: str, threads: int | None, iters: int,
                peak_gflops: float | None) -> None:
    """Theoretical cost of MODEL_OR_FILE (a zoo name or an .onnx file) from its ONNX graph.

    Parameters, MACs and FLOPs (1 MAC = 2 FLOPs), weight and activation memory, peak live activation
    memory and arithmetic intensity, per layer and in total. With --measure, also the time ONNX Runtime
    spends in each layer and the GFLOP/s it reaches there.

    \b
    Examples:
      edgecnn profile vgg16 --per-layer
      edgecnn profile model.onnx --batch 8 --json
      edgecnn profile resnet50 --measure --per-layer
    """
    from edgecnn.profiler import report
    from edgecnn.profiler.source import resolve_model

    if batch is not None and batch < 1:
        raise EdgecnnError(f"--batch must be >= 1, got {batch}")
    path = resolve_model(model_or_file, precision)
    if measure:
        from edgecnn.profiler.perlayer import profile

        result = profile(path, batch=batch, measure=True, provider=provider, threads=threads, iters=iters,
                         peak_gflops=peak_gflops)
        cost = result.cost
    else:
        from edgecnn.profiler.cost import graph_cost

        result = None
        cost = graph_cost(path, batch)
    if csv_path:
        text = report.cost_csv(cost, result.csv_extra() if result else None)
        if csv_path == "-":
            click.echo(text, nl=False)
        else:
            from edgecnn._io import atomic_write_bytes

            atomic_write_bytes(csv_path, text.encode())
    if as_json:
        d = result.to_dict(nodes=nodes) if result else cost.to_dict(nodes=nodes)
        echo_json(d)
        return
    if csv_path == "-":
        return
    if per_layer:
        click.echo(result.layer_table() if result else report.layer_table(cost))
        click.echo("")
    click.echo(report.totals_text(cost))
    if result:
        click.echo(result.summary())


@cli.command("bench")
@click.argument("model_or_file")
@click.option("--provider", default="cpu", show_default=True, help="cpu, cuda, tensorrt or auto (best available).")
@click.option("--batch", "batch_text", default="1", show_default=True, help="Batch sizes to sweep, e.g. 1,8,32.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default="fp32", show_default=True,
              help="For zoo names: export (fp16) or quantize (int8) as needed; cached.")
@click.option("--warmup", type=int, default=5, show_default=True, help="Untimed runs before timing each batch size.")
@click.option("--iters", type=int, default=None, help="Timed runs per batch size (default: run for --duration).")
@click.option("--duration", type=float, default=None, help="Seconds of timed runs per batch size (default 2).")
@click.option("--threads", type=int, default=None, help="Intra-op threads for ORT and torch (default: all CPUs).")
@click.option("--compare", type=click.Choice(["torch"]), default=None,
              help="Also time the same model in torch eager (same threads, same inputs).")
@click.option("--per-layer", is_flag=True, help="Add ORT's per-layer profile: time, GFLOP/s, % of peak, provider.")
@click.option("--peak-gflops", type=float, default=None, help="Peak GFLOP/s for efficiency (default: measured once "
              "per machine and provider by a large MatMul and a 3x3 conv in ORT, cached).")
@click.option("--refresh-peak", is_flag=True, help="Measure the peak again instead of using the cached value.")
@click.option("--fallback", is_flag=True, help="Fall back to another provider instead of failing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (no progress bar).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write latency/throughput vs batch size (and a roofline with --per-layer) to this PNG.")
def bench_cmd(model_or_file: str, provider: str, batch_text: str, precision: str, warmup: int, iters: int | None,
              duration: float | None, threads: int | None, compare: str | None, per_layer: bool,
              peak_gflops: float | None, refresh_peak: bool, fallback: bool, as_json: bool,
              plot_path: str | None) -> None:
    """Measure latency, throughput, memory and efficiency of MODEL_OR_FILE on ONNX Runtime.

    For each batch size: latency mean/std/min/p50/p90/p95/p99/max (ms), throughput (images/s), the
    coefficient of variation (warns when too noisy), process RSS peak and growth, theoretical GFLOPs per
    image, achieved GFLOP/s (FLOPs / p50 latency) and efficiency = achieved / peak.

    \b
    Examples:
      edgecnn bench resnet50 --batch 1,8 --compare torch
      edgecnn bench model.onnx --provider cuda --batch 1,8,32 --json
      edgecnn bench vgg16 --per-layer --plot vgg16.png
    """
    from edgecnn.profiler import report
    from edgecnn.profiler.measure import bench

    batches = _int_list(batch_text, "--batch")
    if duration is not None and duration <= 0:
        raise EdgecnnError(f"--duration must be > 0, got {duration}")
    result = bench(model_or_file, batches, provider=provider, precision=precision, warmup=warmup, iters=iters,
                   duration=duration, threads=threads, compare=compare, per_layer=per_layer,
                   peak_gflops=peak_gflops, refresh_peak=refresh_peak, fallback=fallback,
                   progress=False if as_json else None)
    if plot_path:
        from edgecnn.profiler.plot import plot_bench

        plot_bench(result, plot_path)
    if as_json:
        echo_json(result.to_dict())
        return
    click.echo(report.bench_text(result))
    if plot_path:
        click.echo(f"plot: {plot_path}")


# --------------------------------------------------------------------------- scale-out


def _triton_options(f: Any) -> Any:
    """Options shared by 'edgecnn triton' (and the Triton part of 'edgecnn export --triton-repo')."""
    opts = [
        click.option("--name", default=None, help="Triton model name (and folder) [default: the file's model name]."),
        click.option("--version", "model_version", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Model version folder to write."),
        click.option("--max-batch-size", type=click.IntRange(min=1), default=None,
                     help="max_batch_size for a dynamic-batch file [default: 32]; a fixed-batch file gets 0."),
        click.option("--triton-provider", "triton_provider", type=click.Choice(["cuda", "tensorrt", "cpu"]),
                     default="cuda", show_default=True,
                     help="How Triton's ONNX Runtime backend runs it: cuda, tensorrt (adds the TensorRT "
                          "accelerator) or cpu."),
        click.option("--instances", type=click.IntRange(min=1), default=1, show_default=True,
                     help="instance_group count (model copies per device)."),
        click.option("--instance-kind", type=click.Choice(["gpu", "cpu"]), default=None,
                     help="instance_group kind [default: cpu for --triton-provider cpu, else gpu]."),
        click.option("--preferred-batch", default=None, metavar="N,N,...",
                     help="dynamic_batching preferred batch sizes, e.g. 8,16."),
        click.option("--queue-delay-us", type=click.IntRange(min=0), default=100, show_default=True,
                     help="dynamic_batching max_queue_delay_microseconds."),
        click.option("--no-dynamic-batching", is_flag=True, help="Leave out the dynamic_batching block."),
        click.option("--trt-precision", type=click.Choice(["FP32", "FP16", "INT8"], case_sensitive=False),
                     default=None, help="TensorRT precision_mode [default: the file's precision]."),
        click.option("--trt-cache-path", default=None,
                     help="TensorRT engine cache folder inside the server [default: /tmp/triton_trt_cache/NAME]."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _write_triton(path: str, repo: str, *, force: bool = False, name: str | None = None, model_version: int = 1,
                  max_batch_size: int | None = None, triton_provider: str = "cuda", instances: int = 1,
                  instance_kind: str | None = None, preferred_batch: str | None = None, queue_delay_us: int = 100,
                  no_dynamic_batching: bool = False, trt_precision: str | None = None,
                  trt_cache_path: str | None = None) -> Any:
    """Write the Triton repository for ``path`` and print where it went."""
    from edgecnn.scale.triton import write_triton_repo

    preferred: list[int] = []
    for part in (preferred_batch or "").split(","):
        if part.strip():
            try:
                preferred.append(int(part))
            except ValueError:
                raise EdgecnnError(f"--preferred-batch takes integers like 8,16, got {preferred_batch!r}.") from None
    result = write_triton_repo(
        path, repo, version=model_version, force=force, name=name, max_batch_size=max_batch_size,
        provider=triton_provider, instance_count=instances, instance_kind=instance_kind,
        dynamic_batching=not no_dynamic_batching, preferred_batch_sizes=preferred, max_queue_delay_us=queue_delay_us,
        trt_precision=trt_precision.upper() if trt_precision else None, trt_cache_path=trt_cache_path)
    click.echo(f"wrote Triton model {result.config.name!r} version {result.version_dir.name}: {result.model_file}, "
               f"{result.config_file} (max_batch_size {result.config.max_batch_size})", err=True)
    return result


@cli.command("triton")
@click.argument("model", metavar="MODEL_OR_FILE")
@click.argument("repo", metavar="REPO_DIR")
@_triton_options
@click.option("--force", is_flag=True, help="Replace an existing version folder.")
@click.option("--print-config", is_flag=True, help="Also print the written config.pbtxt.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def triton_cmd(model: str, repo: str, force: bool, print_config: bool, as_json: bool, **options: Any) -> None:
    """Write a Triton Inference Server model repository for MODEL_OR_FILE into REPO_DIR.

    Writes REPO_DIR/NAME/VERSION/model.onnx and REPO_DIR/NAME/config.pbtxt for Triton's ONNX Runtime
    backend (platform onnxruntime_onnx); inputs, outputs, types and dims come from the file.

    \b
    Example:
      edgecnn triton resnet18.onnx repo/ --triton-provider tensorrt --trt-precision FP16 --preferred-batch 8,16
      docker run --gpus=all -p8000:8000 -p8001:8001 -p8002:8002 -v $PWD/repo:/models \\
          nvcr.io/nvidia/tritonserver:<yy.mm>-py3 tritonserver --model-repository=/models
    """
    result = _write_triton(_model_file(model), repo, force=force, **options)
    if as_json:
        echo_json({"name": result.config.name, "version": int(result.version_dir.name),
                   "model_file": str(result.model_file), "config_file": str(result.config_file),
                   "max_batch_size": result.config.max_batch_size, "config": result.config.to_pbtxt()})
    elif print_config:
        click.echo(result.config.to_pbtxt(), nl=False)


# --------------------------------------------------------------------------- exporters


def _parse_size(_ctx: Any, _param: Any, value: str | None) -> tuple[int, int] | None:
    """'224', '224x224' or '224,224' -> (H, W)."""
    if value is None:
        return None
    parts = value.lower().replace(",", "x").split("x")
    try:
        nums = [int(p) for p in parts if p.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r}: use N or HxW, e.g. 224 or 224x224") from None
    if len(nums) not in (1, 2) or min(nums) < 1:
        raise click.BadParameter(f"{value!r}: use N or HxW with positive integers")
    return (nums[0], nums[-1])


def _parse_batch(_ctx: Any, _param: Any, value: str | None) -> int | None:
    if value is None or value.lower() == "dynamic":
        return None
    try:
        n = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: use a positive integer or 'dynamic'") from None
    if n < 1:
        raise click.BadParameter(f"{value!r}: batch must be >= 1")
    return n


def _fmt_validation(v: dict[str, Any]) -> list[str]:
    def f(key: str, fmt: str) -> str:
        return "n/a" if v.get(key) is None else format(v[key], fmt)

    tol = v.get("tolerances", {})
    lines = [f"validation: {'passed' if v['passed'] else 'FAILED'} (ONNX checker: {v['checker']}; "
             f"ONNX Runtime CPU vs torch fp32, {v['num_inputs']} random inputs at batch "
             f"{'/'.join(map(str, v['batch_sizes']))})"]
    if v.get("max_abs_diff") is not None:
        lines += [
            f"  max abs diff {f('max_abs_diff', '.3e')}   max rel diff {f('max_rel_diff', '.3e')} "
            f"(tol {tol.get('max_rel_diff', 0):g})   cosine {f('cosine', '.6f')} (min {tol.get('min_cosine', 0):g})",
            f"  centered rel diff {f('centered_rel_diff', '.3e')} (tol {tol.get('centered_rel_diff', 0):g})   "
            f"centered cosine {f('centered_cosine', '.6f')} (min {tol.get('min_centered_cosine', 0):g})   "
            f"input dependence {f('input_dependence', '.2e')}",
            f"  top-1 agreement {f('top1_agreement', '.0%')}   top-5 agreement {f('top5_agreement', '.0%')}"]
    lines += [f"  failed: {x}" for x in v.get("failures", [])]
    lines += [f"  warning: {x}" for x in v.get("warnings", [])]
    return lines


def _print_export(r: dict[str, Any]) -> None:
    extra = " + external data file" if r["external_data"] else ""
    click.echo(f"wrote {r['path']} ({r['size_bytes'] / 1e6:.1f} MB{extra}; {r['precision']}, io {r['io_dtype']}, "
               f"opset {r['opset']}, batch {r['batch']}, input {'x'.join(map(str, r['input_shape']))})")
    if r["external_data"]:
        click.echo(f"  weights over ONNX's 2 GB limit: stored in {r['path']}.data next to the file; keep them together")
    simp = "onnxsim" if r["simplified"] else "not simplified"
    click.echo(f"graph: {r['nodes_before']} -> {r['nodes_after']} nodes ({simp}), {r['initializers']} initializers, "
               f"{r['num_params']:,} parameters, " + (f"{r['macs'] / 1e9:.3f} GMACs/image" if r["macs"] >= 1e8
                                                          else f"{r['macs'] / 1e6:.3f} MMACs/image"))
    if r["simplify_note"]:
        click.echo(f"note: {r['simplify_note']}")
    if r["validation"]:
        for line in _fmt_validation(r["validation"]):
            click.echo(line)
    else:
        click.echo("validation: skipped (--no-validate)")
    t = r["timings"]
    click.echo("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in t.items()))


@cli.command("export")
@click.argument("model", metavar="MODEL")
@click.option("-o", "--output", type=click.Path(), default=None,
              help="Output file or existing folder [default: ./<model>[-fp16].onnx].")
@click.option("--weights", type=click.Path(dir_okay=False), default=None, metavar="PATH",
              help="Local state dict (.pth/.pt; torchvision's or edgecnn's). Nothing is downloaded.")
@click.option("--fp16", is_flag=True, help="fp16 weights and compute (about half the file size).")
@click.option("--int8", is_flag=True,
              help="Then quantize to int8 (static QDQ, like 'edgecnn quantize'): writes <output>.int8.onnx too.")
@click.option("--calib", default=None, metavar="DIR|FILE.npy|random:N",
              help="Calibration data for --int8 [default: random:32, for speed tests only].")
@click.option("--io", "io", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="dtype of the graph's input/output; fp16 (with --fp16) suits GPU pipelines.")
@click.option("--opset", type=int, default=None,
              help="ONNX opset [default: 17, run by ONNX Runtime, TensorRT 10 and onnxruntime-web].")
@click.option("--batch", default=None, callback=_parse_batch, metavar="N|dynamic",
              help="Fixed batch size, or 'dynamic' [default: dynamic].")
@click.option("--input-size", default=None, callback=_parse_size, metavar="HxW",
              help="Input height x width (e.g. 224 or 160x160) [default: the model's].")
@click.option("--channels", type=click.IntRange(min=1), default=None, help="Input channels of a user model [3].")
@click.option("--num-classes", type=click.IntRange(min=1), default=None,
              help="Output classes (re-heads a zoo model; checked against a user model's output).")
@click.option("--name", default=None, help="Model name stored in the file [default: zoo name or factory name].")
@click.option("--no-simplify", is_flag=True, help="Skip onnxsim simplification.")
@click.option("--no-validate", is_flag=True, help="Skip the checker and the ONNX Runtime vs torch comparison.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (no progress).")
@click.option("--format", "fmt", type=click.Choice(["onnx", "ort"]), default="onnx", show_default=True,
              help="ort: also write ONNX Runtime's ORT-format model (<name>.ort, for mobile and reduced builds) "
                   "and its <name>.required_operators.config next to the .onnx file.")
@click.option("--triton-repo", default=None, metavar="DIR",
              help="Also write a Triton model repository for the file: DIR/<name>/1/model.onnx + config.pbtxt "
                   "(defaults of 'edgecnn triton'; --force replaces the version).")
def export_cmd(model: str, output: str | None, weights: str | None, fp16: bool, io: str, opset: int | None,
               batch: int | None, input_size: tuple[int, int] | None, channels: int | None,
               num_classes: int | None, name: str | None, no_simplify: bool, no_validate: bool, force: bool,
               as_json: bool, int8: bool = False, calib: str | None = None, fmt: str = "onnx",
               triton_repo: str | None = None) -> None:
    """Export MODEL to a validated, simplified, self-describing ONNX file.

    MODEL is a zoo name (see 'edgecnn list'), or your own model as package.module:factory or
    path/to/file.py:factory (a callable returning an nn.Module; describe it with --input-size,
    --channels, --num-classes). Training-only heads (GoogLeNet's aux classifiers) are left out.

    \b
    Examples:
      edgecnn export resnet18                       # ./resnet18.onnx, fp32, dynamic batch
      edgecnn export googlenet --fp16 -o models/    # models/googlenet-fp16.onnx
      edgecnn export resnet50 --weights r50.pth --batch 8 --json
      edgecnn export mynet.py:build --input-size 64 --num-classes 10
      edgecnn export resnet18 --format ort          # + resnet18.ort for onnxruntime-android/-objc

    Exit codes: 0 ok, 1 validation failed (file kept as *.FAILED.onnx), 2 usage/user error.
    """
    from edgecnn.exporters import DEFAULT_OPSET, ValidationFailed, export

    if io == "fp16" and not fp16:
        raise EdgecnnError("--io fp16 needs --fp16 (fp16 inputs/outputs go with fp16 compute)")
    if int8 and fp16:
        raise EdgecnnError("--int8 quantizes the fp32 export: leave out --fp16")
    try:
        result = export(model, output, weights=weights, precision="fp16" if fp16 else "fp32",
                        io_dtype="float16" if io == "fp16" else "float32",
                        opset=DEFAULT_OPSET if opset is None else opset, batch=batch, input_size=input_size,
                        channels=channels, num_classes=num_classes, name=name, simplify=not no_simplify,
                        validate=not no_validate, force=force, progress=not as_json and sys.stderr.isatty())
    except ValidationFailed as e:
        if as_json:
            echo_json(e.result.to_dict())
        else:
            _print_export(e.result.to_dict())
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    quant = _export_int8(result.path, calib, as_json) if int8 else None
    ort_files = None
    if fmt == "ort":
        from pathlib import Path

        from edgecnn.exporters.ort_format import to_ort_format

        ort_files = {k: str(v) for k, v in to_ort_format(result.path, Path(result.path).parent).items()}
    if triton_repo:
        _write_triton(str(result.path), triton_repo, force=force)
    if as_json:
        out = result.to_dict() if quant is None else {**result.to_dict(), "int8": quant}
        echo_json(out if ort_files is None else {**out, "ort_format": ort_files})
    else:
        _print_export(result.to_dict())
        if quant is not None:
            _print_export_int8(quant)
        if ort_files is not None:
            click.echo(f"wrote {ort_files['ort']} (ORT format) and {ort_files['config']} "
                       "(operators for a reduced build)")


@cli.command("inspect")
@click.argument("file", type=click.Path(dir_okay=False), metavar="FILE.onnx")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect_cmd(file: str, as_json: bool) -> None:
    """Show an ONNX file's edgecnn metadata, inputs, outputs, opset, size and op histogram."""
    from edgecnn.exporters.inspection import describe

    d = describe(file)
    if as_json:
        echo_json(d)
        return
    click.echo(f"{d['path']}: {d['size_bytes'] / 1e6:.2f} MB, opset "
               + ", ".join(f"{k} {v}" for k, v in d["opset"].items())
               + f", IR {d['ir_version']}, producer {d['producer'] or '?'}")
    if d["external_data"]:
        click.echo(f"external data: {', '.join(d['external_data'])}")
    for kind in ("inputs", "outputs"):
        for v in d[kind]:
            click.echo(f"{kind[:-1]:6s}  {v['name']}: {v['dtype']} [{', '.join(map(str, v['shape']))}]")
    meta = d["metadata"]
    if meta:
        click.echo("metadata:")
        width = max(len(k) for k in meta)
        for k, v in meta.items():
            shown = json.dumps(v) if isinstance(v, (list, dict)) else f"{v:,}" if isinstance(v, int) else v
            click.echo(f"  {k.ljust(width)}  {shown}")
    else:
        click.echo("metadata: none from edgecnn (a foreign file)")
    for k, v in d["other_metadata"].items():
        click.echo(f"  {k}: {v}")
    click.echo(f"ops ({d['num_nodes']} nodes, {d['num_initializers']} initializers): "
               + ", ".join(f"{op} {n}" for op, n in d["ops"].items()))


@cli.command("batch-predict")
@click.argument("model", metavar="MODEL_OR_FILE")
@click.argument("input_dir", metavar="INPUT_DIR")
@click.option("--output", "-o", required=True, metavar="FILE",
              help="Results file: .parquet (needs pyarrow) or .jsonl; one row per image.")
@click.option("--top", "-k", type=click.IntRange(min=1), default=5, show_default=True, help="Classes per image.")
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True, help="Images per inference run.")
@click.option("--provider", type=click.Choice(["auto", "cpu", "cuda", "tensorrt"]), default="auto",
              show_default=True, help=_PROVIDER_HELP)
@click.option("--ray", "use_ray", is_flag=True, help="Run on a Ray cluster with Ray Data (pip install 'edgecnn[ray]').")
@click.option("--address", default=None,
              help="With --ray: 'auto' (the cluster this machine is in) or ray://HOST:10001 [default: a local Ray].")
@click.option("--concurrency", type=click.IntRange(min=1), default=2, show_default=True,
              help="With --ray: number of inference actors (one Engine each).")
@click.option("--cpus-per-worker", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="With --ray: CPUs each actor reserves (also its ONNX Runtime threads).")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="With --ray: GPUs each actor reserves (e.g. 1, or 0.5 to share a GPU).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Local path: ONNX Runtime threads [default: all CPUs available].")
@click.option("--loaders", type=click.IntRange(min=1), default=2, show_default=True,
              help="Local path: image decoding threads feeding the batcher.")
@click.option("--force", is_flag=True, help="Overwrite an existing results file.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
def batch_predict_cmd(model: str, input_dir: str, output: str, top: int, batch: int, provider: str, use_ray: bool,
                      address: str | None, concurrency: int, cpus_per_worker: float, gpus_per_worker: float,
                      threads: int | None, loaders: int, force: bool, no_progress: bool, as_json: bool) -> None:
    """Classify every image under INPUT_DIR and write path, top-k classes and probabilities per image.

    Locally (default) one Engine and a Batcher run the images on this machine; with --ray, Ray Data reads
    the images and CONCURRENCY actors (one Engine each) predict them on a Ray cluster. Both write the
    same columns: path (relative to INPUT_DIR), classes, labels, probabilities.

    \b
    Examples:
      edgecnn batch-predict resnet18 images/ -o results.parquet
      edgecnn batch-predict resnet18.onnx /shared/images -o results.parquet --ray --address auto --concurrency 8
    """
    from edgecnn.scale.local import batch_predict, check_output

    check_output(output, force)
    if not use_ray and (address or gpus_per_worker):
        raise EdgecnnError("--address and --gpus-per-worker apply to --ray runs only.")
    if use_ray:
        from edgecnn.scale.ray import require_ray

        require_ray()
    path = _model_file(model)
    if use_ray:
        from edgecnn.scale.ray import ray_batch_predict

        result = ray_batch_predict(path, input_dir, output, top=top, batch=batch, concurrency=concurrency,
                                   cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
                                   provider=provider, address=address, force=force, progress=not no_progress)
    else:
        engine = _open_engine(path, provider=provider, threads=threads, max_batch=batch)
        result = batch_predict(path, input_dir, output, top=top, batch=batch, loaders=loaders, force=force,
                               progress=not no_progress, engine=engine)
    if as_json:
        echo_json(result.as_dict())
    else:
        click.echo(f"{result.images} images -> {result.output} in {result.seconds:.1f} s "
                   f"({result.images_per_s:.1f} images/s, {result.mode}"
                   f"{f', {result.workers} workers' if result.mode == 'ray' else ''})")


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI, turning user errors into one line and exit code."""
    try:
        cli.main(args=argv, prog_name="edgecnn", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except EdgecnnError as e:
        if _DEBUG:
            raise
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
