"""``edgecnn list``, ``inspect`` and ``doctor``: what the zoo holds, what a file holds, what the install holds."""

from __future__ import annotations

import json
from typing import Any

import click

from edgecnn.cli.options import output, preprocessing, reporting
from edgecnn.cli.output import echo_json, format_table
from edgecnn.tables import printable

GROUP_TITLES = {"tasks": "detection and segmentation models"}
#: ``edgecnn list`` table: (key of the row, header)
LIST_COLUMNS = [("name", "name"), ("family", "family"), ("task", "task"), ("input", "input"), ("params", "parameters"),
                ("gmacs", "GMACs"), ("tv", "torchvision"), ("reference", "reference")]


def _list_row(r: dict[str, Any]) -> dict[str, Any]:
    if r["inference_params"] is None:  # a torchvision model without torchvision installed
        params = "? (needs torchvision)"
    else:
        params = f"{r['inference_params']:,}"
    if r["inference_params"] is not None and r["num_params"] != r["inference_params"]:
        params += f" (+{r['num_params'] - r['inference_params']:,} train-only)"
    gmacs = f"{r['gmacs']:.3f}" if r["gmacs"] >= 0.001 else f"{r['gmacs']:.4f}"
    return {**r, "input": "x".join(str(v) for v in r["input_shape"]), "params": params, "gmacs": gmacs,
            "tv": "yes" if r["torchvision_compatible"] else "no"}


@click.command("list")
@click.option("--group", type=click.Choice(["classic", "mobile", "tasks"]), default=None,
              help="Only the classic ImageNet CNNs, the mobile ones, or the detectors and segmenters (tasks) "
                   "[default: all].")
@reporting()
def list_cmd(group: str | None, as_json: bool) -> None:
    """List the reference models, classic, mobile, then detection and segmentation (tasks): name, family,
    task, input, parameters, GMACs, torchvision compatibility, paper."""
    from edgecnn.models import GROUPS, describe_all

    rows = [r for r in describe_all() if group is None or r["group"] == group]
    if as_json:
        echo_json(rows)
        return
    groups = [g for g in GROUPS if group is None or g == group]
    click.echo("\n\n".join(f"{GROUP_TITLES.get(g, g + ' models')}\n"
                           + format_table([_list_row(r) for r in rows if r["group"] == g], LIST_COLUMNS)
                           for g in groups))


@click.command("doctor")
@reporting()
def doctor_cmd(as_json: bool) -> None:
    """Check the install: versions, onnxruntime build and providers, GPU, driver, CPU int8 support, fixes."""
    from edgecnn.runtime.doctor import collect, format_report

    report = collect()
    if as_json:
        echo_json(report)
    else:
        click.echo(format_report(report))


#: labels shown by ``inspect`` before the list is summarised
SHOWN_LABELS = 5


def _shown_value(key: str, v: Any) -> str:
    """A metadata value for the text view: long label lists summarised, strings escaped and cut."""
    if key == "labels" and isinstance(v, list) and len(v) > SHOWN_LABELS:
        head = ", ".join(json.dumps(x) if isinstance(x, str) else str(x) for x in v[:SHOWN_LABELS])
        return f"{len(v):,} labels: [{head}, ...]"
    text = json.dumps(v) if isinstance(v, (list, dict)) else f"{v:,}" if isinstance(v, int) and \
        not isinstance(v, bool) else str(v)
    return printable(text, 200)


def _inspect_lines(d: dict[str, Any]) -> list[str]:
    P = printable
    lines = [f"{P(d['path'])}: {d['size_bytes'] / 1e6:.2f} MB, opset "
             + ", ".join(f"{P(k)} {v}" for k, v in d["opset"].items())
             + f", IR {d['ir_version']}, producer {P(d['producer'] or '?', 200)}"]
    if d["external_data"]:
        lines.append(f"external data: {P(', '.join(d['external_data']), 500)}")
    for kind in ("inputs", "outputs"):
        lines += [f"{kind[:-1]:6s}  {P(v['name'], 200)}: {v['dtype']} [{P(', '.join(map(str, v['shape'])), 200)}]"
                  for v in d[kind]]
    meta = d["metadata"]
    invalid = d.get("invalid_metadata", {})
    if meta:
        lines.append("metadata:")
        width = min(max(len(P(k, 40)) for k in meta), 40)
        for k, v in meta.items():
            flag = f"   <- invalid: {P(invalid[k], 200)}" if k in invalid else ""
            lines.append(f"  {P(k, 40).ljust(width)}  {_shown_value(k, v)}{flag}")
    else:
        lines.append("metadata: none from edgecnn (a foreign file)")
    lines += [f"  {P(k, 80)}: {P(v, 200)}" for k, v in d["other_metadata"].items()]
    lines.append(f"ops ({d['num_nodes']} nodes, {d['num_initializers']} initializers): "
                 + ", ".join(f"{op} {n}" for op, n in d["ops"].items()))
    return lines


def _save_metadata(file: str, prepared: Any, out: str | None, force: bool) -> str:
    """Write ``prepared.spec``'s choices into FILE's metadata: to ``out``, or in place with ``force``."""
    from pathlib import Path

    from edgecnn import onnxfile
    from edgecnn.errors import EdgecnnError
    from edgecnn.io_spec import save_metadata
    from edgecnn.outputs import plan_output

    if out is None and not force:
        raise EdgecnnError(f"--save-metadata writes {file} in place only with --force; or give -o OUT.onnx.")
    target = plan_output(out, Path(file).name, force=force) if out is not None else Path(file)
    in_place = target.resolve() == Path(file).resolve()
    # in place, external weights stay where they are; elsewhere they are embedded (or written beside OUT)
    model = onnxfile.open_model(file, load_data=not in_place)
    onnxfile.save(save_metadata(model, prepared.spec), target)
    return str(target)


@click.command("inspect")
@click.argument("file", type=click.Path(dir_okay=False), metavar="FILE.onnx")
@click.option("--save-metadata", "save", is_flag=True,
              help="Write what was detected and the preprocessing options given into the file's metadata, so "
                   "later commands need no flags (to -o OUT, or in place with --force).")
@output("With --save-metadata: the file to write [default: FILE itself, with --force].")
@preprocessing()
@reporting()
def inspect_cmd(file: str, save: bool, output: str | None, force: bool, as_json: bool,
                preprocess: dict[str, Any]) -> None:
    """Show an ONNX file's edgecnn metadata, inputs, outputs, opset, size and op histogram, what edgecnn
    would normalise, and the preprocessing it detects or assumes (the options override it).

    \b
    Examples:
      edgecnn inspect squeezenet.onnx
      edgecnn inspect squeezenet.onnx --save-metadata --bgr --range 0-255 -o squeezenet.edgecnn.onnx
    """
    from edgecnn import metadata as M
    from edgecnn.errors import EdgecnnError
    from edgecnn.exporters.inspection import describe
    from edgecnn.modelfile import prepare

    d = describe(file)
    invalid = M.problems(d["metadata"])  # shown flagged; what would be run is not described then
    d["invalid_metadata"] = invalid
    try:
        prepared = prepare(file, preprocess=preprocess, write=False)
    except EdgecnnError as e:
        if not invalid or save:
            raise
        prepared = None
        d.update(normalized=[], input_spec=[], notices=[f"not runnable as it is: {e}"])
    else:
        spec = prepared.spec
        d.update(normalized=list(prepared.changes), input_spec=spec.lines(), notices=list(prepared.notices),
                 task_spec=spec.task.as_dict() if spec.task is not None else None)
    written = _save_metadata(file, prepared, output, force) if save else None
    if as_json:
        echo_json({**d, "saved_to": written})
        return
    click.echo("\n".join(_inspect_lines(d)))
    if prepared is None:
        click.echo("\n".join(printable(n, 2000) for n in d["notices"]))
    else:
        click.echo("\n".join(printable(line, 2000) for line in
                              [f"normalised when run: {c}" for c in prepared.changes] + spec.lines()))
    if written:
        click.echo(f"wrote the choices above into {written}'s metadata")


COMMANDS = [list_cmd, inspect_cmd, doctor_cmd]
