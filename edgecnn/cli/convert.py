"""``edgecnn convert``: any ``.onnx`` file -> ONNX Runtime's ORT format for mobile and minimal builds (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgecnn.cli.options import Choice, output, prepared_model, preprocessing, reporting
from edgecnn.cli.output import echo_json


@click.command("convert")
@click.argument("file", type=click.Path(dir_okay=False), metavar="FILE.onnx")
@output("Folder for FILE.ort and FILE.required_operators.config [default: FILE's folder].", metavar="DIR",
        dir_okay=True)
@click.option("--optimization", type=Choice(["fixed", "runtime"]), default="fixed", show_default=True,
              help="fixed: graph optimizations applied now (runs as is); runtime: saved and replayed at load time.")
@click.option("--target-platform", type=Choice(["arm", "amd64"]), default=None,
              help="Tune the saved optimizations for this CPU [default: the converter's].")
@preprocessing()
@reporting()
def convert_cmd(file: str, output: str | None, force: bool, optimization: str, target_platform: str | None,
                as_json: bool, preprocess: dict[str, Any]) -> None:
    """Convert FILE.onnx to ORT format: FILE.ort and its required-operators config (the input of a reduced
    ONNX Runtime build). The file is normalised first, and the preprocessing edgecnn detects (or the options
    give) is kept in the ORT file's metadata, so an app reads input size and mean/std from it.

    \b
    Example:
      edgecnn convert squeezenet.onnx -o mobile/
      ./build.sh --minimal_build --include_ops_by_config mobile/squeezenet.required_operators.config
    """
    from edgecnn.exporters.ort_format import ort_targets, to_ort_format
    from edgecnn.outputs import check_writable, refuse_existing

    out = Path(output) if output else Path(file).parent
    refuse_existing(list(ort_targets(file, out, optimization).values()), force)  # both files, before any work
    check_writable(out)
    prepared = prepared_model(file, preprocess=preprocess)
    files = to_ort_format(prepared.path, out, optimization=optimization, target_platform=target_platform, force=force)
    if as_json:
        echo_json({**{k: str(v) for k, v in files.items()}, "notices": list(prepared.notices)})
        return
    click.echo(f"wrote {files['ort']} and {files['config']}")


COMMANDS = [convert_cmd]
