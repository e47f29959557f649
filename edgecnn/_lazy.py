"""Lazy public names for a package: import a submodule only when one of its names is first used.

Keeps ``import edgecnn`` (and ``edgecnn.runtime``, ``edgecnn.profiler``...) fast and torch-free.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, table: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``; ``table`` maps a public name to the module defining it
    (absolute, or relative to ``package`` when it starts with a dot). A name mapped to the sub-package of the
    same name is that sub-package (``edgecnn.optimize``, a callable module). Loaded values are cached in the
    package."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        loaded = importlib.import_module(module, package)
        value = loaded if loaded.__name__ == f"{package}.{name}" else getattr(loaded, name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(table))

    return __getattr__, __dir__
