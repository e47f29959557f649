"""The ``edgecnn`` command: thin click commands over models, exporters, quantization, runtime, profiler
and scale-out.

Argument parsing and printing only; the work lives in the parts' Python APIs. One module per command
group (:mod:`~edgecnn.cli.export`, :mod:`~edgecnn.cli.quantize`, :mod:`~edgecnn.cli.run`,
:mod:`~edgecnn.cli.profile`, :mod:`~edgecnn.cli.inspect`, :mod:`~edgecnn.cli.scale`,
:mod:`~edgecnn.cli.convert`, :mod:`~edgecnn.cli.bundle`); the options
several commands share are defined once in :mod:`~edgecnn.cli.options`. Every user error ends in one
line on stderr and a non-zero exit (a traceback only with ``--debug``).
"""

from __future__ import annotations

from edgecnn.cli.app import cli, main
from edgecnn.cli.output import echo_json, format_table

__all__ = ["cli", "echo_json", "format_table", "main"]
