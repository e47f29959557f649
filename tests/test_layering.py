"""The layering that import-linter cannot see: the targets of every ``_lazy.py`` table (importlib strings).

``pyproject.toml``'s import-linter contracts check the static imports; a package's lazy table could
still reach a part it may not import. Each package's table may only point into the package itself, the
shared modules, or the parts the contracts allow it.
"""

from __future__ import annotations

import importlib

import pytest

SHARED = ("edgecnn.onnxfile", "edgecnn.graphcost", "edgecnn.metadata", "edgecnn.errors", "edgecnn.metrics",
          "edgecnn.tables", "edgecnn._io", "edgecnn.normalize", "edgecnn.io_spec", "edgecnn.modelfile")
#: package -> the other parts its lazy names may load (besides itself and the shared modules)
ALLOWED = {
    "edgecnn": ("edgecnn.models", "edgecnn.exporters", "edgecnn.runtime", "edgecnn.optimize", "edgecnn.quantize",
                "edgecnn.profiler"),
    "edgecnn.runtime": (),
    "edgecnn.quantize": ("edgecnn.runtime",),
    "edgecnn.scale": ("edgecnn.runtime",),
    "edgecnn.graphcost": (),
    "edgecnn.profiler": ("edgecnn.runtime",),
    "edgecnn.exporters": ("edgecnn.models", "edgecnn.runtime", "edgecnn.quantize"),
    "edgecnn.optimize": ("edgecnn.quantize", "edgecnn.runtime", "edgecnn.profiler"),
    "edgecnn.bundle": ("edgecnn.runtime",),
}


def _resolve(package: str, target: str) -> str:
    return importlib.util.resolve_name(target, package) if target.startswith(".") else target


def _inside(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_lazy_tables_keep_the_layering(package: str) -> None:
    names = vars(importlib.import_module(package))
    # _LAZY: absolute or '.module' targets; _EXPORTS: bare submodule names (the package prefixes a dot)
    table = names.get("_LAZY") or {n: f".{m}" for n, m in names["_EXPORTS"].items()}
    assert table, package
    allowed = (package, *SHARED, *ALLOWED[package]) if package != "edgecnn" else ALLOWED[package]
    outside = {name: _resolve(package, t) for name, t in table.items()
               if not any(_inside(_resolve(package, t), a) for a in allowed)}
    assert not outside, f"{package}'s lazy names load parts it may not import: {outside}"


def test_every_lazy_table_is_checked() -> None:
    import pathlib

    root = pathlib.Path(importlib.import_module("edgecnn").__file__).parent
    with_tables = {".".join(("edgecnn", *p.parent.relative_to(root).parts)) for p in root.rglob("__init__.py")
                   if "lazy_attributes(" in p.read_text()}
    assert with_tables <= set(ALLOWED), f"add these packages to ALLOWED: {sorted(with_tables - set(ALLOWED))}"


def test_a_table_reaching_a_forbidden_part_is_caught() -> None:
    """The check itself can fail: a runtime name pointing into the exporters is reported."""
    allowed = ("edgecnn.runtime", *SHARED)
    assert not any(_inside("edgecnn.exporters.api", a) for a in allowed)
