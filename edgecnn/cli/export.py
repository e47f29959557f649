"""``edgecnn export``: a zoo model or your own ``nn.Module`` -> a validated, self-describing ``.onnx`` file.

``--int8``, ``--format ort`` and ``--triton-repo`` then hand the fresh file to quantization, ONNX Runtime's
ORT format and the Triton repository writer.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from edgecnn.cli.options import deprecated_alias, output, parse_batch_sizes, reporting
from edgecnn.cli.output import echo_json
from edgecnn.cli.quantize import _export_int8, _print_export_int8
from edgecnn.cli.scale import write_triton
from edgecnn.errors import EdgecnnError


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


def _parse_batch_dim(_ctx: Any, _param: Any, value: str | None) -> int | None:
    """'dynamic' (or nothing) -> None; 'N' -> N, through the CLI's one batch-size parser."""
    if value is None or str(value).lower() == "dynamic":
        return None
    try:
        return parse_batch_sizes(value, "--batch-dim", sweep=False)[0]
    except EdgecnnError:
        raise EdgecnnError(f"--batch-dim takes one integer >= 1 or 'dynamic'; got {value!r}") from None


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
    for b in (v.get("task") or {}).get("sweep", []):
        if "images" in b:
            lines.append(f"  batch {b['batch']}: " + "; ".join(
                f"{m['matched']}/{m['reference']} boxes matched (IoU >= {tol.get('min_iou', 0):g}"
                + (f", min {m['min_iou']:.4f}, score diff <= {m['max_score_diff']:.1e}" if m["matched"] else "")
                + ")" for m in b["images"]))
        else:
            lines.append(f"  batch {b['batch']}: argmax agrees on {100 * b['pixel_agreement']:.3f}% of pixels, "
                         f"max rel diff {b['max_rel_diff']:.2e}")
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
    for note in r.get("notes", []):
        click.echo(f"note: {note}")
    if r["validation"]:
        for line in _fmt_validation(r["validation"]):
            click.echo(line)
    else:
        click.echo("validation: skipped (--no-validate)")
    t = r["timings"]
    click.echo("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in t.items()))


def _extras(path: str, *, int8: bool, calib: str | None, fmt: str, triton_repo: str | None, force: bool,
            quiet: bool, scratch: bool = False) -> dict[str, Any]:
    """What --int8, --format ort and --triton-repo make from the fresh export (in that order)."""
    extras: dict[str, Any] = {}
    if int8:
        extras["quant"] = _export_int8(path, calib, quiet)
    if fmt == "ort":
        from edgecnn.exporters.ort_format import to_ort_format

        extras["ort_files"] = {k: str(v) for k, v in to_ort_format(path, Path(path).parent).items()}
    if triton_repo:
        extras["repo"] = write_triton(str(path), triton_repo, force=force, move=scratch)
    return extras


def _repo_only_output(triton_repo: str | None, output: str | None, int8: bool, fmt: str) -> str | None:
    """With --triton-repo and no -o the export goes only into the repository: a scratch folder removed on exit."""
    if not triton_repo or output is not None:
        return None
    if int8 or fmt == "ort":
        raise EdgecnnError("--int8 and --format ort write files beside the export: with --triton-repo, give "
                           "-o FILE|DIR for them.")
    import shutil
    import tempfile

    scratch = tempfile.mkdtemp(prefix="edgecnn-export-")
    click.get_current_context().call_on_close(lambda: shutil.rmtree(scratch, ignore_errors=True))
    return scratch


def _show_export(r: dict[str, Any], as_json: bool, quant: dict[str, Any] | None = None,
                 ort_files: dict[str, str] | None = None) -> None:
    if as_json:
        out = r if quant is None else {**r, "int8": quant}
        echo_json(out if ort_files is None else {**out, "ort_format": ort_files})
        return
    _print_export(r)
    if quant is not None:
        _print_export_int8(quant)
    if ort_files is not None:
        click.echo(f"wrote {ort_files['ort']} (ORT format) and {ort_files['config']} (operators for a reduced build)")


@click.command("export")
@click.argument("model", metavar="MODEL")
@output("Output file or existing folder [default: ./<model>[-fp16].onnx].", metavar="PATH", dir_okay=True)
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
@click.option("--batch-dim", default=None, callback=_parse_batch_dim, metavar="N|dynamic",
              help="The file's batch dimension: a fixed N, or 'dynamic' (any batch at run time) [default: dynamic]. "
                   "Other commands' --batch is the number of images per run.")
@deprecated_alias("--batch", "--batch-dim", "batch", callback=_parse_batch_dim)
@click.option("--input-size", default=None, callback=_parse_size, metavar="HxW",
              help="Input height x width (e.g. 224 or 160x160) [default: the model's].")
@click.option("--channels", type=click.IntRange(min=1), default=None, help="Input channels of a user model [3].")
@click.option("--num-classes", type=click.IntRange(min=1), default=None,
              help="Output classes (re-heads a zoo model; checked against a user model's output).")
@click.option("--name", default=None, help="Model name stored in the file [default: zoo name or factory name].")
@click.option("--nms", type=click.Choice(["auto", "graph", "host"]), default=None,
              help="Detection models: NMS in the graph (the standard ONNX NonMaxSuppression), on the host (raw boxes "
                   "and scores out; NMS in numpy at run time) or auto (graph unless a runtime here lacks the "
                   "operator) [default: auto].")
@click.option("--no-simplify", is_flag=True, help="Skip onnxsim simplification.")
@click.option("--no-validate", is_flag=True, help="Skip the checker and the ONNX Runtime vs torch comparison.")
@reporting()
@click.option("--format", "fmt", type=click.Choice(["onnx", "ort"]), default="onnx", show_default=True,
              help="ort: also write ONNX Runtime's ORT-format model (<name>.ort, for mobile and reduced builds) "
                   "and its <name>.required_operators.config next to the .onnx file.")
@click.option("--triton-repo", default=None, metavar="DIR",
              help="Also write a Triton model repository for the file: DIR/<name>/1/model.onnx + config.pbtxt "
                   "(defaults of 'edgecnn triton'; --force replaces the version).")
def export_cmd(model: str, output: str | None, fp16: bool, io: str, opset: int | None, batch_dim: int | None,
               batch: int | None, nms: str | None, no_simplify: bool, no_validate: bool, force: bool, as_json: bool,
               int8: bool, calib: str | None, fmt: str, triton_repo: str | None, **build: Any) -> None:
    """Export MODEL to a validated, simplified, self-describing ONNX file.

    MODEL is a zoo name (see 'edgecnn list'), or your own model as package.module:factory or
    path/to/file.py:factory (a callable returning an nn.Module; describe it with --input-size,
    --channels, --num-classes). Training-only heads (GoogLeNet's aux classifiers) are left out.

    \b
    Examples:
      edgecnn export resnet18                       # ./resnet18.onnx, fp32, dynamic batch
      edgecnn export googlenet --fp16 -o models/    # models/googlenet-fp16.onnx
      edgecnn export resnet50 --weights r50.pth --batch-dim 8 --json
      edgecnn export mynet.py:build --input-size 64 --num-classes 10
      edgecnn export resnet18 --format ort          # + resnet18.ort for onnxruntime-android/-objc

    Exit codes: 0 ok, 1 validation failed (file kept as *.FAILED.onnx), 2 usage/user error.
    """
    from edgecnn.exporters import DEFAULT_OPSET, ValidationFailed, export

    if io == "fp16" and not fp16:
        raise EdgecnnError("--io fp16 needs --fp16 (fp16 inputs/outputs go with fp16 compute)")
    if int8 and fp16:
        raise EdgecnnError("--int8 quantizes the fp32 export: leave out --fp16")
    batch_dim = batch if batch_dim is None else batch_dim
    scratch = _repo_only_output(triton_repo, output, int8, fmt)
    output = scratch or output
    try:
        result = export(model, output, precision="fp16" if fp16 else "fp32", io_dtype=io,
                        opset=DEFAULT_OPSET if opset is None else opset, batch=batch_dim,
                        simplify=not no_simplify, validate=not no_validate, force=force, nms=nms,
                        progress=not as_json and sys.stderr.isatty(), **build)
    except ValidationFailed as e:
        _show_export(e.result.to_dict(), as_json)
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    extras = _extras(result.path, int8=int8, calib=calib, fmt=fmt, triton_repo=triton_repo, force=force, quiet=as_json,
                     scratch=scratch is not None)
    if "repo" in extras:
        repo = extras.pop("repo")
        if scratch is not None:
            result.path = str(repo.model_file)
    _show_export(result.to_dict(), as_json, **extras)


COMMANDS = [export_cmd]
