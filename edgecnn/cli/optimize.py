"""``edgecnn optimize``: the click command (argument parsing and printing only; the work is in :mod:`.runner`)."""

from __future__ import annotations

import json
import sys

import click

from edgecnn.cli import options
from edgecnn.errors import EdgecnnError


def _list(text: str | None, what: str) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise EdgecnnError(f"{what} is empty: give a comma-separated list.")
    return items


@click.command("optimize")
@options.model_source()
@click.option("--data", type=click.Path(), default=None, metavar="DIR",
              help="Images to judge accuracy on: an ImageFolder (root/<class>/<image>: top-1/top-5) or a folder of "
                   "images (agreement with fp32). A deterministic part is set aside for calibration. Without it: "
                   "the digits task for lenet5, else synthetic inputs judged by --min-sqnr (accuracy NOT measured).")
@click.option("--budget", type=click.FloatRange(min=0), default=1.0, show_default=True, metavar="POINTS",
              help="Allowed drop against fp32 in points of the task's metric: top-1 for a classifier, mAP@.5 for "
                   "a detector, mIoU for a segmenter (labelled: --annotations, --masks); without labels, points of "
                   "agreement (top-1 agreement, matched-box F1 at IoU 0.5, pixel agreement).")
@options.task_labels()
@options.batching(sweep=True, default="1,8", help="The first is the one optimised for.")
@click.option("--providers", default=None, metavar="LIST",
              help="Runtimes to try, comma-separated: cpu, cuda, tensorrt, openvino [default: all; those not "
                   "available here are listed as skipped].")
@click.option("--precisions", default=None, metavar="LIST",
              help="Precisions to try, comma-separated: fp32, fp16, bf16, int8 [default: all that apply].")
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Folder for the chosen model, report.md/.json/.csv and pareto.png [default: ./optimize-<model>].")
@click.option("--time-limit", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Stop starting candidates after this long; the report covers what was measured.")
@click.option("--min-sqnr", type=float, default=20.0, show_default=True, metavar="DB",
              help="Without data: the least SQNR (dB) of a candidate's logits against fp32.")
@click.option("--target-arch", type=click.Choice(["aarch64", "x86_64"]), default=None, metavar="ARCH",
              help="The architecture the file is for: aarch64 or x86_64 [default: this machine's]. int8 gets its "
                   "activation type "
                   "(int8 on aarch64, uint8 on x86_64); on another architecture than this machine's (or under an "
                   "emulator) timings say nothing about the target, so the choice is by accuracy and size only.")
@options.force_option()
@options.runtime(fallback=False, threads=True, provider=False)
@click.option("--duration", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="Seconds of timed runs per candidate (at least 10 runs).")
@options.reporting()
@options.preprocessing()
def optimize_cmd(model: str, data: str | None, annotations: str | None, masks: str | None, budget: float,
                 batch: list[int], providers: str | None,
                 precisions: str | None, output: str | None, force: bool, time_limit: float | None, min_sqnr: float,
                 threads: int | None, duration: float, as_json: bool, preprocess: dict,
                 target_arch: str | None) -> None:
    """Measure MODEL_OR_FILE on every runtime x precision x batch and keep the fastest within the budget.

    Candidates: each available runtime (ONNX Runtime CPU/CUDA/TensorRT, OpenVINO) x each precision it
    can run (fp32, fp16, bf16, int8 static QDQ with the activation type that is fast on this CPU) x
    each batch size, each timed in its own process; plus int8 with its most sensitive layers kept in
    float when plain int8 misses the budget. The chosen file records the decision in its metadata.

    \b
    Examples:
      edgecnn optimize resnet50                         # synthetic inputs, SQNR budget
      edgecnn optimize lenet5                           # the digits task, top-1 budget
      edgecnn optimize model.onnx --data val/ --budget 0.5 -o shipped/
      edgecnn optimize lenet5 --target-arch aarch64     # int8 for ARM, chosen by accuracy and size
      edgecnn optimize det.onnx --data test/images --annotations test/instances.json --budget 1   # mAP@.5
    """
    from pathlib import Path

    from edgecnn.optimize.report import REPORT_FILES, summary_lines, table_markdown
    from edgecnn.optimize.runner import optimize
    from edgecnn.outputs import check_writable, plain_name, refuse_existing

    name = plain_name(Path(model).name.removesuffix(".onnx"), "MODEL_OR_FILE's name")
    out = output or f"optimize-{name}"
    if Path(out).is_dir() and not force:  # the reports (and a chosen model) of an earlier run are not replaced
        refuse_existing([Path(out) / f for f in REPORT_FILES] + sorted(Path(out).glob(f"{name}.*.onnx")), force)
    check_writable(out)
    if Path(model).is_file() or any(preprocess.values()):
        model = str(options.prepared_model(model, preprocess=preprocess).path)
    metric = None
    if annotations is not None or masks is not None:
        from edgecnn.cli.quantize import _labelled

        metric = _labelled(Path(model), data, annotations, masks, None)
    report = optimize(model, data=data, budget=budget, batches=batch, task_metric=metric,
                      providers=_list(providers, "--providers"), precisions=_list(precisions, "--precisions"),
                      output=out, time_limit=time_limit, min_sqnr=min_sqnr, threads=threads, duration=duration,
                      progress=False if as_json else None, target_arch=target_arch,
                      log=None if as_json else (lambda m: click.echo(m, err=True)))
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    lines = summary_lines(report)
    if lines and lines[0].startswith("WARNING"):
        click.secho(lines.pop(0), err=True, fg="yellow", bold=True)
    click.echo(table_markdown(report))
    click.echo("")
    click.echo("\n".join(lines))
    click.echo(f"reports: {Path(out) / 'report.md'} (.json, .csv, pareto.png)")
    if not report["accuracy_measured"]:
        kind = "SQNR" if report.get("file_task") in (None, "classification") else "agreement"
        click.secho(f"WARNING: accuracy was not measured on real data (synthetic inputs, {kind} budget).", err=True,
                    fg="yellow", bold=True)
    sys.stdout.flush()


COMMANDS = (optimize_cmd,)
