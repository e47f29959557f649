"""The backend registry: every runtime edgecnn can run a file on, by name (the ``--provider`` value).

Built in: ``cpu``, ``cuda``, ``tensorrt`` (ONNX Runtime's providers) and ``openvino``. More come from

* a call: ``edgecnn.runtime.backends.register(MyBackend())`` (a :class:`~edgecnn.runtime.backends.base.Backend`);
* the entry-point group ``edgecnn.backends``: each entry point loads a Backend subclass or instance.

A plug-in that fails to load is remembered with its reason (:func:`failures`): one ``skipped: <reason>`` row in
``optimize`` and one ``doctor`` line, never a traceback. :func:`get` of an unknown name lists the available ones.
A registered backend's :func:`origin` (``module:Class``) lets a child process (``optimize`` measures each
candidate in its own) register it again.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading
from typing import Any

from edgecnn.errors import EdgecnnError
from edgecnn.runtime.backends.base import Backend

#: the entry-point group plug-in backends register under
ENTRY_POINT_GROUP = "edgecnn.backends"
#: ``auto``: the best backend this install has
AUTO = "auto"

_lock = threading.RLock()
_backends: dict[str, Backend] = {}
_origins: dict[str, str] = {}
_failed: dict[str, str] = {}
_loaded = False


def _builtin() -> list[Backend]:
    from edgecnn.runtime.backends.onnxruntime import builtin as ort_builtin
    from edgecnn.runtime.backends.openvino import OpenVINOBackend

    return [*ort_builtin(), OpenVINOBackend()]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:240]


def _load() -> None:
    global _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
        for b in _builtin():
            _backends.setdefault(b.name, b)
        try:
            eps = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
        except Exception:  # noqa: BLE001 - broken package metadata must not break the built-in backends
            eps = []
        for ep in eps:
            try:
                obj = ep.load()
                register(obj() if isinstance(obj, type) else obj, origin=ep.value)
            except Exception as e:  # noqa: BLE001 - a plug-in that fails to import is reported, never raised
                _failed[ep.name] = f"the plug-in backend {ep.name!r} ({ep.value}) failed to load: " \
                                   f"{type(e).__name__}: {_first_line(e)}"


def register(backend: Backend, *, origin: str | None = None, replace: bool = False) -> Backend:
    """Add ``backend`` under ``backend.name``; ``origin`` (``module:Class``, default: the backend's class) lets a
    child process re-create it. A name already taken raises unless ``replace``."""
    if not isinstance(backend, Backend) or not getattr(backend, "name", ""):
        raise EdgecnnError(f"cannot register {backend!r}: a backend is an edgecnn.runtime.backends.Backend "
                           "with a name.")
    _load()
    name = backend.name.strip().lower()
    with _lock:
        if name in _backends and not replace and _backends[name] is not backend:
            raise EdgecnnError(f"a backend named {name!r} is already registered.")
        _backends[name] = backend
        _origins[name] = origin or f"{type(backend).__module__}:{type(backend).__qualname__}"
        _failed.pop(name, None)
    return backend


def unregister(name: str) -> None:
    """Remove a backend registered with :func:`register` (tests)."""
    with _lock:
        _backends.pop(name, None)
        _origins.pop(name, None)
        _failed.pop(name, None)


def reload() -> None:
    """Forget every backend and scan the built-ins and the entry points again (tests, plug-in development)."""
    global _loaded
    with _lock:
        _backends.clear()
        _origins.clear()
        _failed.clear()
        _loaded = False
    _load()


def origin_path(name: str) -> str | None:
    """The folder holding the module of a plug-in backend, for a child process whose ``sys.path`` lacks it."""
    spec = origin(name)
    if not spec:
        return None
    import sys

    module = sys.modules.get(spec.partition(":")[0])
    file = getattr(module, "__file__", None)
    if not file:
        return None
    import os

    depth = spec.partition(":")[0].count(".")
    folder = os.path.dirname(os.path.abspath(file))
    for _ in range(depth):
        folder = os.path.dirname(folder)
    return folder


def record_failure(name: str, reason: str) -> None:
    """Remember a plug-in that could not load (reported by ``doctor`` and ``optimize``)."""
    _load()
    with _lock:
        _failed[name] = reason


def names() -> list[str]:
    """Registered backend names, built-ins first."""
    _load()
    return list(_backends)


def choices() -> list[str]:
    """What ``--provider`` takes: ``auto`` and every registered name."""
    return [AUTO, *names()]


def failures() -> dict[str, str]:
    """Plug-ins that failed to load: name -> reason."""
    _load()
    return dict(_failed)


def origin(name: str) -> str | None:
    """``module:Class`` of a backend registered from outside the package (None for the built-in ones)."""
    _load()
    return _origins.get(name)


def ensure(name: str, origin_spec: str | None, path: str | None = None) -> None:
    """Register ``name`` from ``origin_spec`` (``module:Class``, found under ``path`` when given) unless it is
    registered already (child processes; importing the module may register it by itself)."""
    _load()
    if name in _backends or not origin_spec:
        return
    import sys

    if path and path not in sys.path:
        sys.path.insert(0, path)
    module, _, attr = origin_spec.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
        if name not in _backends:
            register(obj() if isinstance(obj, type) else obj, origin=origin_spec)
    except EdgecnnError:
        raise
    except Exception as e:  # noqa: BLE001
        raise EdgecnnError(f"cannot load backend {name!r} from {origin_spec}: {type(e).__name__}: "
                           f"{_first_line(e)}") from None


def _unknown(name: str) -> EdgecnnError:
    failed = failures()
    if name in failed:
        return EdgecnnError(f"backend {name!r} is not available: {failed[name]}")
    return EdgecnnError(f"unknown provider {name!r}: choose one of {', '.join(choices())}.")


def normalize(name: str) -> str:
    """A registered name for ``name`` (case, ONNX Runtime provider names, ``OpenVINO:CPU``...), ``auto`` kept."""
    text = str(name).strip()
    low = text.lower()
    if low == AUTO:
        return AUTO
    _load()
    if low in _backends:
        return low
    from edgecnn.runtime.backends import ort_providers as P

    try:
        short = P.normalize(text)
    except EdgecnnError:
        raise _unknown(text) from None
    if short in _backends:
        return short
    raise _unknown(text)


def get(name: str) -> Backend:
    """The backend for ``name``; ``auto`` = ONNX Runtime's best provider when onnxruntime is installed, else
    OpenVINO when it is; one error naming the extras when neither is."""
    _load()
    n = normalize(name)
    if n != AUTO:
        return _backends[n]
    from edgecnn.runtime.backends import ort_providers as P
    from edgecnn.runtime.backends.onnxruntime import OrtBackend

    if P.onnxruntime_installed():
        return OrtBackend(AUTO)
    for b in _backends.values():
        if b.reference_rank is not None and b.unavailable() is None:
            return b
    P.import_onnxruntime()  # raises: no runtime at all, naming the extras
    raise EdgecnnError("no runtime is installed")  # pragma: no cover


def of_provider(provider: str) -> Backend | None:
    """The backend an entry of ``Engine.providers`` (``CPUExecutionProvider``, ``OpenVINO:CPU``...) belongs to."""
    _load()
    for b in _backends.values():
        if b.owns(provider):
            return b
    return None


def reference() -> Backend:
    """The backend the fp32 reference of a deviation report runs on: the available one with the lowest
    ``reference_rank`` (ONNX Runtime's CPU provider, else OpenVINO at f32)."""
    _load()
    ranked = sorted((b for b in _backends.values() if b.reference_rank is not None), key=lambda b: b.reference_rank)
    for b in ranked:
        if b.unavailable() is None:
            return b
    from edgecnn.runtime.backends import ort_providers as P

    P.import_onnxruntime()  # raises, naming the extras
    return ranked[0]  # pragma: no cover


def available() -> dict[str, str | None]:
    """Every registered backend -> None when it can run here, else why not; failed plug-ins with their reason."""
    out: dict[str, str | None] = {}
    for n in names():
        try:
            out[n] = _backends[n].unavailable()
        except Exception as e:  # noqa: BLE001 - a plug-in's own check must not break the listing
            out[n] = f"{type(e).__name__}: {_first_line(e)}"
    out.update(failures())
    return out


def versions() -> dict[str, str]:
    """Installed distributions (name -> version) of every registered backend; a plug-in whose own report fails
    adds nothing."""
    out: dict[str, str] = {}
    for n in names():
        try:
            out.update(_backends[n].versions())
        except Exception:  # noqa: BLE001 - a plug-in's version report must not break a bench
            continue
    return out
