"""The user's own model: ``package.module:factory`` or ``path/to/file.py:factory``, a callable returning a module."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from torch import nn

from edgecnn.errors import EdgecnnError


def is_user_ref(ref: str) -> bool:
    """True for ``module:factory`` / ``file.py:factory`` references (zoo names never contain ':')."""
    return ":" in ref


def load_factory_model(ref: str) -> tuple[nn.Module, str]:
    """Import and call the factory named by ``ref``; returns ``(module, factory name)``."""
    target, _, attr = ref.rpartition(":")
    if not target or not attr:
        raise EdgecnnError(f"bad model reference {ref!r}: use a zoo name, package.module:factory "
                           "or path/to/file.py:factory")
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_file():
            raise EdgecnnError(f"model file not found: {path}")
        mod_name = f"edgecnn_user_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise EdgecnnError(f"cannot import {path}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:  # noqa: BLE001 - the user's code may raise anything
            sys.modules.pop(mod_name, None)
            raise EdgecnnError(f"importing {path} failed: {type(e).__name__}: {_first_line(e)}") from None
    else:
        try:
            module = importlib.import_module(target)
        except Exception as e:  # noqa: BLE001
            raise EdgecnnError(f"cannot import module {target!r}: {type(e).__name__}: {_first_line(e)}") from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise EdgecnnError(f"{target} has no attribute {attr!r}")
    if isinstance(factory, nn.Module):
        return factory, attr
    if not callable(factory):
        raise EdgecnnError(f"{target}:{attr} is not callable (got {type(factory).__name__}); it must return an "
                           "nn.Module")
    try:
        model = factory()
    except Exception as e:  # noqa: BLE001
        raise EdgecnnError(f"{target}:{attr}() failed: {type(e).__name__}: {_first_line(e)}") from None
    if not isinstance(model, nn.Module):
        raise EdgecnnError(f"{target}:{attr}() returned {type(model).__name__}, not a torch nn.Module")
    return model, attr


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else "")[:200]
