"""The building blocks of the CLI's option groups: a decorator stack and a ``Choice`` whose bad value is one line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from edgecnn.errors import EdgecnnError

F = TypeVar("F", bound=Callable[..., Any])


def _name(param: click.Parameter | None) -> str:
    if param is None:
        return "value"
    return max(param.opts, key=len) if param.opts and isinstance(param, click.Option) else param.human_readable_name


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """One decorator applying ``decorators`` in the order written (the first one's option is listed first)."""

    def apply(f: F) -> F:
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


class Choice(click.Choice):
    """``click.Choice`` whose bad value is one ``error:`` line (an :class:`EdgecnnError`), not a usage block."""

    def fail(self, message: str, param: click.Parameter | None = None, ctx: click.Context | None = None) -> NoReturn:
        raise EdgecnnError(f"{_name(param)}: {message}")
