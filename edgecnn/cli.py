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
    """List the reference models: name, family, input, parameters, torchvision compatibility."""
    from edgecnn.models import describe_all

    rows = describe_all()
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        r["input"] = "x".join(str(v) for v in r["input_shape"])
        r["params"] = f"{r['inference_params']:,}"
        if r["num_params"] != r["inference_params"]:
            r["params"] += f" (+{r['num_params'] - r['inference_params']:,} train-only)"
        r["tv"] = "yes" if r["torchvision_compatible"] else "no"
    click.echo(format_table(rows, [("name", "name"), ("family", "family"), ("input", "input"),
                                   ("params", "parameters"), ("tv", "torchvision"),
                                   ("reference", "reference")]))


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
