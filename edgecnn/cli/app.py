"""The ``edgecnn`` click group and the console-script entry point that turns user errors into one line."""

from __future__ import annotations

import signal
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from edgecnn import __version__
from edgecnn.cli import bundle, convert, export, inspect, optimize, profile, quantize, run, scale
from edgecnn.errors import EdgecnnError, EdgecnnWarning
from edgecnn.tables import printable

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


for _module in (inspect, export, convert, bundle, quantize, run, profile, scale, optimize):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


class Terminated(BaseException):
    """SIGTERM arrived: unwinds the stack like Ctrl-C, so ``finally`` blocks remove temporary files."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


@contextmanager
def _signals_and_warnings() -> Iterator[None]:
    """While a command runs: SIGTERM raises :class:`Terminated` (SIGINT already raises KeyboardInterrupt), and
    edgecnn's own warnings print as one ``warning:`` line with control characters escaped."""
    previous_show = warnings.showwarning

    def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:
        if issubclass(category, EdgecnnWarning):
            click.echo(f"warning: {printable(message, None)}", err=True)
        else:
            previous_show(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        previous_term = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (an embedding program): leave signals alone
        previous_term = None
    try:
        yield
    finally:
        warnings.showwarning = previous_show
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)


def _forget_cache_copies() -> None:
    """A failed or interrupted command leaves no normalised copy it made in the cache."""
    from edgecnn.modelfile import forget_new_copies

    forget_new_copies()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI, turning user errors into one line and exit code."""
    try:
        with _signals_and_warnings():
            cli.main(args=argv, prog_name="edgecnn", standalone_mode=False)
    except click.exceptions.Abort:
        _forget_cache_copies()
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except EdgecnnError as e:
        _forget_cache_copies()
        if _DEBUG:
            raise
        click.echo(f"error: {printable(e, 2000)}", err=True)
        sys.exit(e.exit_code)
    except OSError as e:  # a file system refusal outside edgecnn's own checks (disk full, permissions)
        _forget_cache_copies()
        if _DEBUG:
            raise
        where = f": {e.filename}" if e.filename else ""
        click.echo(f"error: {printable(e.strerror or e, 500)}{printable(where, 500)}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        _forget_cache_copies()
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Terminated:
        _forget_cache_copies()
        click.echo("Terminated.", err=True)
        sys.exit(143)
