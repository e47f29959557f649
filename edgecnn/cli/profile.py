"""``edgecnn profile``: the theoretical cost of a model from its ONNX graph, optionally joined with measured time."""

from __future__ import annotations

from typing import Any

import click

from edgecnn.cli.options import (
    batching,
    force_option,
    model_source,
    prepared_model,
    preprocessing,
    reporting,
    runtime,
)
from edgecnn.cli.output import echo_json


def _write_csv(csv_path: str, text: str, force: bool) -> None:
    if csv_path == "-":
        click.echo(text, nl=False)
    else:
        from edgecnn._io import atomic_write_bytes

        atomic_write_bytes(csv_path, text.encode(), overwrite=force)


def _roof(result: Any, bandwidth_gbs: float | None, measure_options: dict[str, Any]) -> Any:
    """The roofline: the peak --measure just used when it has a bandwidth, else this machine's (cached)."""
    from edgecnn.profiler.roofline import Roof, machine_roof

    peak = result.peak if result is not None else None
    if peak is not None and bandwidth_gbs is None and (roof := Roof.from_peak(peak)) is not None:
        return roof
    return machine_roof(measure_options["peak_gflops"], bandwidth_gbs, threads=measure_options["threads"])


@click.command("profile")
@model_source(precision=True)
@batching(help="Costs (and --measure runs) are at this batch [default: the file's fixed batch, else 1].")
@click.option("--per-layer", is_flag=True, help="Print the per-layer table (a conv with its activation is one row).")
@reporting()
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Write the per-layer table as CSV to this file ('-' for stdout).")
@force_option()
@click.option("--nodes", is_flag=True, help="With --json: include every ONNX node.")
@click.option("--measure", is_flag=True,
              help="Also run the model with ONNX Runtime's profiler and join measured time per layer.")
@runtime()
@click.option("--iters", type=click.IntRange(min=1), default=10, show_default=True,
              help="With --measure: profiled runs.")
@click.option("--peak-gflops", type=float, default=None,
              help="Peak GFLOP/s for --measure's % of peak and the roofline of --per-layer/--csv [default: measured "
                   "once in ONNX Runtime and cached].")
@click.option("--bandwidth-gbs", type=float, default=None,
              help="Memory bandwidth in GB/s for the roofline of --per-layer/--csv [default: measured once (an "
                   "elementwise Mul over 64 MiB in ONNX Runtime) and cached].")
@preprocessing()
def profile_cmd(model: str, precision: str, batch: int | None, per_layer: bool, as_json: bool, csv_path: str | None,
                force: bool, nodes: bool, measure: bool, bandwidth_gbs: float | None, preprocess: dict[str, Any],
                **measure_options: Any) -> None:
    """Theoretical cost of MODEL_OR_FILE (a zoo name or an .onnx file) from its ONNX graph.

    Parameters, MACs and FLOPs (1 MAC = 2 FLOPs), weight and activation memory, peak live activation
    memory and arithmetic intensity, per layer and in total. --per-layer (and --csv) also place each
    layer on the roofline of this machine (memory- or compute-bound) and mark depthwise convolutions,
    which sit far below the ridge. With --measure, also the time ONNX Runtime spends in each layer and
    the GFLOP/s it reaches there (--provider, --fallback and --iters apply to --measure only).

    \b
    Examples:
      edgecnn profile vgg16 --per-layer
      edgecnn profile model.onnx --batch 8 --json
      edgecnn profile resnet50 --measure --per-layer
    """
    from edgecnn.profiler import report
    from edgecnn.profiler.cost import graph_cost
    from edgecnn.profiler.roofline import with_roofline

    if csv_path and csv_path != "-":
        from edgecnn.outputs import plan_output

        csv_path = str(plan_output(csv_path, "layers.csv", force=force, inputs=[model]))  # before any work
    prepared = prepared_model(model, precision, measure_options["provider"], preprocess=preprocess)
    path = prepared.path
    result = None
    if measure:
        from edgecnn.profiler.perlayer import profile

        result = profile(path, batch=batch, measure=True, precision=precision, **measure_options)
    cost = result.cost if result else graph_cost(path, batch)
    roof = _roof(result, bandwidth_gbs, measure_options) if per_layer or csv_path else None
    if csv_path:
        _write_csv(csv_path, report.cost_csv(cost, result.csv_extra() if result else None, roof), force)
    if as_json:
        d = result.to_dict(nodes=nodes) if result else cost.to_dict(nodes=nodes)
        echo_json({**(with_roofline(d, cost, roof) if roof else d), "notices": list(prepared.notices)})
        return
    if csv_path == "-":
        return
    if per_layer:
        click.echo(result.layer_table(roof) if result else report.layer_table(cost, roof))
        click.echo("")
    click.echo(report.totals_text(cost))
    if result:
        click.echo(result.summary())


COMMANDS = [profile_cmd]
