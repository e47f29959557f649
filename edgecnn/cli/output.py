"""What the commands print: JSON, plain aligned tables, and warnings turned into one stderr line each.

The one table renderer of the CLI (until ``edgecnn/tables.py`` serves every part).
"""

from __future__ import annotations

import json
from typing import Any

import click


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
