"""``edgecnn list``, ``inspect`` and ``doctor``: what the zoo holds, what a file holds, what the install holds."""

from __future__ import annotations

import json
from typing import Any

import click

from edgecnn.cli.options import reporting
from edgecnn.cli.output import echo_json, format_table

#: ``edgecnn list`` table: (key of the row, header)
LIST_COLUMNS = [("name", "name"), ("family", "family"), ("input", "input"), ("params", "parameters"),
                ("gmacs", "GMACs"), ("tv", "torchvision"), ("reference", "reference")]


def _list_row(r: dict[str, Any]) -> dict[str, Any]:
    params = f"{r['inference_params']:,}"
    if r["num_params"] != r["inference_params"]:
        params += f" (+{r['num_params'] - r['inference_params']:,} train-only)"
    gmacs = f"{r['gmacs']:.3f}" if r["gmacs"] >= 0.001 else f"{r['gmacs']:.4f}"
    return {**r, "input": "x".join(str(v) for v in r["input_shape"]), "params": params, "gmacs": gmacs,
            "tv": "yes" if r["torchvision_compatible"] else "no"}


@click.command("list")
@reporting()
def list_cmd(as_json: bool) -> None:
    """List the reference models, classic then mobile: name, family, input, parameters, GMACs, torchvision
    compatibility, paper."""
    from edgecnn.models import GROUPS, describe_all

    rows = describe_all()
    if as_json:
        echo_json(rows)
        return
    click.echo("\n\n".join(f"{group} models\n" + format_table([_list_row(r) for r in rows if r["group"] == group],
                                                               LIST_COLUMNS) for group in GROUPS))


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


def _inspect_lines(d: dict[str, Any]) -> list[str]:
    lines = [f"{d['path']}: {d['size_bytes'] / 1e6:.2f} MB, opset "
             + ", ".join(f"{k} {v}" for k, v in d["opset"].items())
             + f", IR {d['ir_version']}, producer {d['producer'] or '?'}"]
    if d["external_data"]:
        lines.append(f"external data: {', '.join(d['external_data'])}")
    for kind in ("inputs", "outputs"):
        lines += [f"{kind[:-1]:6s}  {v['name']}: {v['dtype']} [{', '.join(map(str, v['shape']))}]" for v in d[kind]]
    meta = d["metadata"]
    if meta:
        lines.append("metadata:")
        width = max(len(k) for k in meta)
        for k, v in meta.items():
            shown = json.dumps(v) if isinstance(v, (list, dict)) else f"{v:,}" if isinstance(v, int) else v
            lines.append(f"  {k.ljust(width)}  {shown}")
    else:
        lines.append("metadata: none from edgecnn (a foreign file)")
    lines += [f"  {k}: {v}" for k, v in d["other_metadata"].items()]
    lines.append(f"ops ({d['num_nodes']} nodes, {d['num_initializers']} initializers): "
                 + ", ".join(f"{op} {n}" for op, n in d["ops"].items()))
    return lines


@click.command("inspect")
@click.argument("file", type=click.Path(dir_okay=False), metavar="FILE.onnx")
@reporting()
def inspect_cmd(file: str, as_json: bool) -> None:
    """Show an ONNX file's edgecnn metadata, inputs, outputs, opset, size and op histogram."""
    from edgecnn.exporters.inspection import describe

    d = describe(file)
    if as_json:
        echo_json(d)
    else:
        click.echo("\n".join(_inspect_lines(d)))


COMMANDS = [list_cmd, inspect_cmd, doctor_cmd]
