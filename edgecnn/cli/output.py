"""What the commands print: JSON, plain aligned tables (:func:`edgecnn.tables.format_table`, the one renderer),
and warnings turned into one stderr line each."""

from __future__ import annotations

import json
from typing import Any

import click

from edgecnn.tables import format_table


def echo_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON on stdout."""
    click.echo(json.dumps(obj, indent=2, default=str))


def open_engine(path: str, **kwargs: Any) -> Any:
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


__all__ = ["echo_json", "format_table", "open_engine"]
