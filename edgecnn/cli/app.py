"""The ``edgecnn`` click group and the console-script entry point that turns user errors into one line."""

from __future__ import annotations

import sys

import click

from edgecnn import __version__
from edgecnn.cli import convert, export, inspect, optimize, profile, quantize, run, scale
from edgecnn.errors import EdgecnnError

_DEBUG = False


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


for _module in (inspect, export, convert, quantize, run, profile, scale, optimize):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


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
