"""edgecnn's optimizer: measure every runtime x precision x batch candidate and ship the fastest one within
an accuracy budget.

    import edgecnn

    report = edgecnn.optimize("resnet50", output="out/")          # same data as 'edgecnn optimize --json'
    edgecnn.optimize.keep_float_search(...)                       # also behind 'quantize --keep-float auto'

The package is callable: ``edgecnn.optimize(...)`` is :func:`edgecnn.optimize.runner.optimize`, so the
name means the same whether the package or the function was imported first. Calls into other parts go
through :mod:`edgecnn.optimize.backends`; each candidate is measured in its own
process (:mod:`edgecnn.optimize.measure`). Names load lazily.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from edgecnn._lazy import lazy_attributes

_EXPORTS: dict[str, str] = {
    "optimize": "runner",
    "keep_float_search": "search",
    "KeepFloatResult": "search",
    "Candidate": "matrix",
    "build_matrix": "matrix",
    "choose": "matrix",
    "TaskData": "data",
    "split_indices": "data",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_attributes(__name__, {name: f".{module}" for name, module in _EXPORTS.items()})


class _CallableModule(types.ModuleType):
    """``edgecnn.optimize(...)`` calls :func:`edgecnn.optimize.runner.optimize`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from edgecnn.optimize.runner import optimize

        return optimize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
