"""The one plain-text table renderer (CLI listings, profiler reports, benchmark tools), and :func:`printable`,
which every string read from a file (labels, names, metadata) goes through before it reaches a terminal."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

#: longest string shown as it is; longer ones are cut with a count of what was left out
MAX_SHOWN = 500


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(value: Any, limit: int | None = MAX_SHOWN) -> str:
    """``str(value)`` safe for a terminal: control and format characters (ESC, OSC, CR, BEL, bidirectional
    overrides...) written as ``\\x1b``-style escapes, and cut after ``limit`` characters (None: no cut)."""
    text = str(value)
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() or ch == " " else
                       _escape(ch) if unicodedata.category(ch)[0] in "CZ" else ch for ch in text)
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit:,} more characters)"
    return text


def _numeric(cell: str) -> bool:
    return cell.replace(",", "").replace(".", "").isdigit()


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], right: Sequence[bool] | None = None) -> str:
    """An aligned text table with a dashed rule under the headers; None cells are blank.

    ``right[i]`` right-aligns column i; without ``right``, cells that are numbers (``1,234``, ``0.5``) are
    right-aligned and the rest left-aligned.
    """
    cells = [[printable(h) for h in headers]] + [["" if c is None else printable(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def align(i: int, c: str, w: int) -> str:
        flush_right = right[i] if right is not None else _numeric(c)
        return c.rjust(w) if flush_right else c.ljust(w)

    def fmt(r: list[str]) -> str:
        return "  ".join(align(i, c, w) for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()

    return "\n".join([fmt(cells[0]), "  ".join("-" * w for w in widths)] + [fmt(r) for r in cells[1:]])


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]],
                 right: Sequence[bool] | None = None) -> str:
    """Render dict rows; ``columns`` is [(key, header), ...]; alignment as in :func:`table`."""
    return table([[r.get(k) for k, _ in columns] for r in rows], [h for _, h in columns], right)
