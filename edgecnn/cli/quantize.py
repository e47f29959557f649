"""``edgecnn quantize`` (and the int8 step of ``export --int8``): fp32 ``.onnx`` -> int8, with its accuracy cost.

The decisions (calibration, kept-float layers, which accuracy report) are :func:`edgecnn.quantize.quantize_model`'s;
this module parses and prints.
"""

from __future__ import annotations

from typing import Any

import click

from edgecnn.cli.options import (
    model_source,
    output,
    prepared_model,
    preprocessing,
    reporting,
    strict_images,
    task_labels,
)
from edgecnn.cli.output import echo_json, format_table
from edgecnn.errors import EdgecnnError


def _quant_source(model: str, preprocess: dict[str, Any]) -> tuple[Any, bool]:
    """(prepared file, is_zoo_name): an .onnx file normalised to opset >= 13 (per-channel QDQ) and IR >= 4, a zoo
    name exported to fp32 (cached) first."""
    import os

    from edgecnn.normalize import PER_CHANNEL_MIN_OPSET

    return (prepared_model(model, min_opset=PER_CHANNEL_MIN_OPSET, preprocess=preprocess),
            not os.path.isfile(model))


def _echo_warnings(caught: list[Any]) -> None:
    """Print caught warnings as one loud line each on stderr (random calibration first)."""
    from edgecnn.quantize.calibration import RandomCalibrationWarning

    for w in caught:
        if issubclass(w.category, RandomCalibrationWarning):
            click.secho(f"WARNING: {w.message}", err=True, fg="yellow", bold=True)
        elif issubclass(w.category, (RuntimeWarning, UserWarning)):
            from edgecnn.tables import printable

            click.echo(f"warning: {printable(w.message, None)}", err=True)


class KeepFloat(click.ParamType):
    """``--keep-float``: a number of layers >= 1, or ``auto``."""

    name = "N|auto"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | str:
        if isinstance(value, int) or str(value).strip().lower() == "auto":
            return value if isinstance(value, int) else "auto"
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            self.fail(f"{value!r} is neither a number of layers >= 1 nor 'auto'.", param, ctx)
        return n


def _explain_rows(rows: list[Any], top: int) -> list[dict[str, Any]]:
    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    return [{"rank": i + 1, "node": r.node, "op": r.op_type, "kind": r.kind, "loss": f(r.loss_db),
             "w": f(r.weight_sqnr_db), "in": f(r.input_sqnr_db), "out": f(r.output_sqnr_db)}
            for i, r in enumerate(rows[:top])]


def _export_int8(fp32_path: str, calib: str | None, quiet: bool) -> dict[str, Any]:
    """'edgecnn export NAME --int8': quantize the fresh fp32 export beside it; quantize + report as a dict."""
    import warnings

    from edgecnn.quantize import quantize_model, show_progress

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = quantize_model(fp32_path, calib=calib or "random:32", progress=show_progress(quiet),
                             note="measured on the calibration data (use 'edgecnn quantize --eval DIR')")
    _echo_warnings(caught)
    return run.to_dict()


def _print_export_int8(quant: dict[str, Any]) -> None:
    q, r = quant["quantize"], quant["report"]
    if "task" in r:  # a detector or segmenter: its own agreement with fp32
        figure = (f"matched-box F1 {r['matched_f1']:.3f} at IoU {r['match_iou']:g}" if "matched_f1" in r
                  else f"pixel agreement {100 * r['pixel_agreement']:.1f}%")
    else:
        figure = f"top-1 agreement {100 * r['top1_agreement']:.1f}%, SQNR {r['sqnr_db']} dB"
    click.echo(f"int8: {q['output']} ({q['size_output'] / 1e6:.2f} MB, {q['compression']:.2f}x smaller), "
               f"{figure} on {r['samples']} calibration inputs"
               f"{' (random: speed tests only)' if q['calibration_random'] else ''}")


@click.command("quantize")
@model_source()
@output("Output file, or folder ending in '/' [default: <name>.int8.onnx beside the input, or in the current folder "
        "for a zoo name].")
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
@task_labels()
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
@click.option("--keep-float", type=KeepFloat(), default=None, metavar="N|auto",
              help="Rank layers by quantization error (QDQ debugging) and re-quantize with the N worst in float; "
                   "auto: the fewest worst layers in float that meet --min-sqnr/--max-drop.")
@click.option("--min-sqnr", type=float, default=None, metavar="DB",
              help="With --keep-float auto: logits' SQNR vs fp32 (on --eval, else the calibration data) of at "
                   "least DB [default: 20 when --max-drop is not given].")
@click.option("--max-drop", type=float, default=None, metavar="POINTS",
              help="With --keep-float auto: top-1 (a classifier), mAP@.5 (a detector, --annotations) or mIoU (a "
                   "segmenter, --masks) at most POINTS below fp32 on labelled --eval data.")
@click.option("--head-aware", "head_aware", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Head-aware int8: keep the decoding after the last Conv/Gemm/MatMul (box decoding, scores, NMS) "
                   "in float and split Concats whose inputs' ranges differ by more than a factor of 16. auto: on "
                   "for detection and segmentation files and for graphs that show a head (NonMaxSuppression or TopK "
                   "after the last Conv, or such a Concat there); off: naive int8.")
@click.option("--explain", is_flag=True,
              help="Rank the layers whose quantization error is largest (onnxruntime qdq_loss_debug).")
@click.option("--explain-top", type=click.IntRange(min=1), default=10, show_default=True,
              help="Rows of the --explain ranking to print.")
@click.option("--tensorrt", "trt", is_flag=True,
              help="Also write the TensorRT calibration table (calibration.flatbuffers/.cache/.json) for the "
                   "fp32 model, for ONNX Runtime's TensorRT provider in int8 mode.")
@click.option("--no-report", is_flag=True, help="Skip the accuracy report.")
@strict_images()
@reporting()
@preprocessing()
def quantize_cmd(model: str, output: str | None, force: bool, strict: bool, calib: str | None, calib_size: int,
                 eval_data: str | None, eval_limit: int | None, annotations: str | None, masks: str | None,
                 mode: str, fmt: str, per_tensor: bool, method: str,
                 activation_type: str,
                 weight_type: str, symmetric: bool, exclude: tuple[str, ...], keep_float: int | str | None,
                 min_sqnr: float | None, max_drop: float | None, head_aware: str, explain: bool, explain_top: int,
                 trt: bool,
                 no_report: bool, as_json: bool, preprocess: dict[str, Any]) -> None:
    """Quantize MODEL_OR_FILE (an fp32 .onnx file or a zoo name) to int8, then report its accuracy cost.

    Static post-training quantization in QDQ format with per-channel int8 weights and uint8
    activations by default (ONNX Runtime's quant_pre_process runs first). The accuracy report
    compares the int8 model with fp32: top-1/top-5 accuracy (labelled --eval data), top-1/top-5
    agreement, cosine similarity and SQNR of the logits, file sizes.

    \b
    Examples:
      edgecnn quantize lenet5.onnx --calib digits/calib --eval digits/test
      edgecnn quantize resnet50.onnx --calib random:32 --no-report     # speed tests only
      edgecnn quantize resnet50.onnx --calib imgs/ --explain --keep-float 2
      edgecnn quantize mobilenet_v2.onnx --calib imgs/ --eval val/ --keep-float auto --max-drop 1
      edgecnn quantize resnet50.onnx --mode dynamic
      edgecnn quantize ssdlite.onnx --calib imgs/ --eval val/ --keep-float auto --explain
    """
    import os
    import warnings
    from pathlib import Path

    from edgecnn import quantize as Q
    from edgecnn.outputs import plain_name, plan_output
    from edgecnn.runtime.datasets import strict_images

    progress = Q.show_progress(quiet=as_json)
    zoo = not os.path.isfile(model)
    default = Path(f"{plain_name(model, 'MODEL')}.int8.onnx") if zoo else Q.default_output(model)
    inputs = [] if zoo else [model]
    out = plan_output(output if output is not None else (default.name if zoo else str(default)), default.name,
                      force=force, inputs=inputs)  # before any work: exists, is the input, cannot be written
    prepared, _ = _quant_source(model, preprocess)
    src = prepared.path
    plan_output(out, default.name, force=force, inputs=[*inputs, str(src)])
    names = tuple(n.strip() for item in exclude for n in item.split(",") if n.strip())
    opts = Q.QuantizeOptions(mode=mode, format=fmt, per_channel=not per_tensor, method=method,
                             activation_type=activation_type, weight_type=weight_type,
                             symmetric_activations=symmetric, exclude=names, calib_size=calib_size, head=head_aware)
    with warnings.catch_warnings(record=True) as caught, strict_images(strict):
        warnings.simplefilter("always")
        calib_data = Q.calibration_for(src, calib, mode=mode, calib_size=calib_size)
    _echo_warnings(caught)  # the random-calibration warning comes first, before the long run
    metric = _labelled(src, eval_data, annotations, masks, eval_limit)
    with warnings.catch_warnings(record=True) as caught, strict_images(strict):
        warnings.simplefilter("always")
        run = Q.quantize_model(src, out, calib=calib_data, options=opts, keep_float=keep_float,
                               min_sqnr_db=min_sqnr, max_drop_points=max_drop, explain_layers=explain, tensorrt=trt,
                               report=not no_report, eval_data=eval_data, eval_limit=eval_limit, progress=progress,
                               force=force, task_metric=metric)
    _echo_warnings([w for w in caught if "random calibration" not in str(w.message)])
    if as_json:
        echo_json({**run.to_dict(), "notices": list(prepared.notices)})
        return
    _print_quantize(run, explain_top)


def _print_quantize(run: Any, explain_top: int) -> None:
    """The text report of 'edgecnn quantize'."""
    from pathlib import Path

    result, ranking, o = run.result, run.ranking, run.result.options
    mode, fmt = o["mode"], o["format"]
    nodes = ", ".join(f"{k} {v}" for k, v in result.quant_nodes.items()) or "none"
    click.echo(f"wrote {result.output} ({result.size_output / 1e6:.2f} MB, {result.compression:.2f}x smaller than "
               f"{Path(result.source).name}) in {result.seconds:.1f} s")
    click.echo(f"  {mode}, {fmt if mode == 'static' else 'dynamic'}, "
               f"{'per-channel' if o['per_channel'] else 'per-tensor'} {o['weight_type']} weights, "
               f"{o['activation_type']} activations" + (f", {o['method']} calibration on {result.calibration}"
                                                        if mode == "static" else ""))
    click.echo(f"  quantization nodes: {nodes}")
    if result.excluded:
        click.echo(f"  kept in float: {', '.join(result.excluded)}")
    if result.head is not None:
        click.echo(f"  head-aware: {result.head['summary']}")
    if run.keep_float is not None:
        k = run.keep_float
        steps = ", ".join(f"{t['keep']}: " + (f"F1 {t['matched_f1']}, " if "matched_f1" in t else "")
                          + (f"pixels {t['pixel_agreement']}, " if "pixel_agreement" in t else "")
                          + f"{t.get('sqnr_db')} dB" for t in k["tried"])
        click.echo(f"  --keep-float auto: {len(k['kept'])} layer(s) in float meet {k['target']} on {k['measured_on']}"
                   f" (tried, layers in float: figures: {steps})")
    if ranking is not None:
        click.echo(f"\nlayers ranked by quantization error (SQNR in dB vs fp32; loss = input - output), "
                   f"worst {min(explain_top, len(ranking))} of {len(ranking)}:")
        click.echo(format_table(_explain_rows(ranking, explain_top),
                                [("rank", "#"), ("node", "node"), ("op", "op"), ("kind", "kind"), ("loss", "loss dB"),
                                 ("w", "weight dB"), ("in", "input dB"), ("out", "output dB")]))
    if run.tensorrt is not None:
        t = run.tensorrt
        click.echo(f"\nTensorRT calibration table ({t['tensors']} tensors) in {t['dir']}; run the fp32 model with "
                   f"Engine(..., provider='tensorrt', provider_options={{'tensorrt': {t['provider_options']}}})")
    if run.report is not None:
        click.echo("")
        click.echo("\n".join(run.report.lines()))
    if result.calibration_random:
        click.secho("WARNING: calibrated on random data: use this model for speed tests only.", err=True,
                    fg="yellow", bold=True)


COMMANDS = [quantize_cmd]


def _labelled(src: Any, images: str | None, annotations: str | None, masks: str | None, limit: int | None) -> Any:
    """The labelled metric of a detection or segmentation file (``--eval DIR`` with ``--annotations`` or
    ``--masks``), or None without labels."""
    if annotations is None and masks is None:
        return None
    from edgecnn.onnxfile import read_metadata
    from edgecnn.profiler.task_accuracy import labelled_metric
    from edgecnn.runtime.vision import task_of

    task = task_of(read_metadata(src))
    want = "detection" if annotations is not None else "segmentation"
    if task != want:
        raise EdgecnnError(f"{'--annotations' if annotations else '--masks'} labels a {want} file's images; this is "
                           f"a {task} file" + (" (label classifiers with an ImageFolder --eval)." if task ==
                                               "classification" else "."))
    if images is None:
        raise EdgecnnError(f"{'--annotations' if annotations else '--masks'} describes a folder of images: give it "
                           "with --eval DIR.")
    return labelled_metric(images, annotations=annotations, masks=masks, limit=limit)
