"""``edgecnn bundle``: one folder with everything an app needs to ship a model, and ``--verify`` for it."""

from __future__ import annotations

from typing import Any

import click

from edgecnn.cli.options import Choice, output, preprocessing, reporting
from edgecnn.cli.output import echo_json
from edgecnn.errors import EdgecnnError
from edgecnn.tables import printable


@click.command("bundle")
@click.argument("file", type=click.Path(dir_okay=False), metavar="FILE.onnx", required=False)
@output("The bundle's folder (created; built under a temporary name and renamed when complete).", metavar="DIR",
        dir_okay=True)
@click.option("--verify", "verify_dir", type=click.Path(file_okay=False), metavar="DIR", default=None,
              help="Check a bundle instead: every SHA-256 in its manifest, then one run with the Python runtime.")
@click.option("--optimization", type=Choice(["fixed", "runtime"]), default="fixed", show_default=True,
              help="The ORT-format file's graph optimizations: fixed (applied now) or runtime (replayed at load).")
@click.option("--target-platform", type=Choice(["arm", "amd64"]), default=None,
              help="Tune the ORT-format file's saved optimizations for this CPU [default: the converter's].")
@preprocessing()
@reporting()
def bundle_cmd(file: str | None, output: str | None, force: bool, verify_dir: str | None, optimization: str,
               target_platform: str | None, as_json: bool, preprocess: dict[str, Any]) -> None:
    """Write FILE.onnx's bundle into DIR: the model as .onnx and ORT format, ONNX Runtime's reduced-operator
    configuration, the preprocessing as plain JSON, the runtime and precision chosen (the file's 'edgecnn
    optimize' decision, if any) and the fallback, a README per target (C++, Android/Kotlin, iOS/Swift; not built
    on a device) and a manifest with the SHA-256 of every file. --verify DIR checks a bundle.

    \b
    Examples:
      edgecnn bundle resnet18.onnx -o ship/resnet18
      edgecnn bundle --verify ship/resnet18
    """
    if verify_dir is not None:
        if file is not None or output is not None:
            raise click.UsageError("--verify DIR checks a bundle: give no FILE and no -o with it.")
        from edgecnn.bundle import verify_bundle

        report = verify_bundle(verify_dir)
        if as_json:
            echo_json(report)
            return
        head = (f"{printable(report['path'])}: {report['files']} files match the manifest; "
                f"{printable(report['model'])}.onnx ran on {report['runtime']} {report['precision']}")
        if report.get("task") == "detection":
            click.echo(f"{head} ({report['detections']} detections, NMS {report['nms']}), "
                       f"{printable(report['model'])}.ort agrees ({report['ort_matched']} matched, min IoU "
                       f"{report['ort_min_iou']:.4f}, scores within {report['ort_max_score_diff']:.1e})")
        elif report.get("task") == "segmentation":
            click.echo(f"{head} ({len(report['classes'])} classes shown), {printable(report['model'])}.ort agrees "
                       f"(per-pixel classes {report['ort_pixel_agreement']:.2%} equal)")
        else:
            click.echo(f"{head} (top-5 {report['top5']}), {printable(report['model'])}.ort agrees "
                       f"(relative difference {report['ort_rel_diff']:.1e})")
        return
    if file is None:
        raise click.UsageError("give FILE.onnx and -o DIR (or --verify DIR).")
    if output is None:
        raise EdgecnnError("give the bundle's folder with -o DIR.")
    from edgecnn.bundle import build_bundle

    result = build_bundle(file, output, force=force, preprocess=preprocess, optimization=optimization,
                          target_platform=target_platform)
    for line in result.notices:
        click.echo(f"note: {printable(line, 2000)}", err=True)
    if as_json:
        echo_json(result.as_dict())
        return
    chosen = result.runtime["chosen"]
    fallback = ", ".join(f"{f['runtime']} {f['precision']}" for f in result.runtime["fallback"]) or "none needed"
    click.echo(f"wrote {printable(str(result.path))}/ ({len(result.files) + 1} files): runtime {chosen['runtime']} "
               f"{chosen['precision']} ({chosen['source']}); fallback: {fallback}; not built on a device")


COMMANDS = [bundle_cmd]
