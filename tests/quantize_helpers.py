"""Helpers for the quantization tests: load ``tools/digits.py`` (not a package) as a module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def digits_tools() -> ModuleType:
    """``tools/digits.py`` imported once (training loop, dataset writer, export, chain)."""
    if "edgecnn_tools_digits" in sys.modules:
        return sys.modules["edgecnn_tools_digits"]
    spec = importlib.util.spec_from_file_location("edgecnn_tools_digits", TOOLS / "digits.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["edgecnn_tools_digits"] = module
    spec.loader.exec_module(module)
    return module
