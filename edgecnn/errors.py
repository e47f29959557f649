"""The one exception type a user can cause; the CLI prints its message as one line and exits non-zero."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EdgecnnError(Exception):
    """A user-facing error: the message says what was wrong and what to do."""

    exit_code = 2


class EdgecnnWarning(UserWarning):
    """A warning a user should see as one ``warning:`` line (the CLI prints it so)."""


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> EdgecnnError:
    """Build an 'unknown X' error that suggests the closest valid names."""
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return EdgecnnError(f"unknown {kind} {name!r}.{hint} Run 'edgecnn list' to see all {len(choices)}.")
