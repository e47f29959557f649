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
