"""The OpenVINO backend of :class:`~edgecnn.runtime.engine.Engine`: the ``openvino`` package reads the ``.onnx``
file directly (no ONNX Runtime needed) and compiles it for a device (``CPU``, ``GPU``, ``NPU``, ``AUTO``).

* compiled-model cache: ``CACHE_DIR`` = ``<edgecnn cache>/openvino`` by default, so a second load of the same
  file with the same settings imports the compiled blob instead of compiling again;
* threads: ``INFERENCE_NUM_THREADS`` (CPU);
* precision: ``INFERENCE_PRECISION_HINT`` from :func:`edgecnn.runtime.precision.resolve_precision`, read back
  from the compiled model, and an error when the device would run another precision than the one asked;
* thread safety: one infer request per concurrent call, from a pool (``InferRequest`` is not thread safe).
"""

from __future__ import annotations

import os
import queue
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError
from edgecnn.runtime.precision import PrecisionChoice, from_openvino
from edgecnn.runtime.providers import OPENVINO

#: devices passed through to OpenVINO (with an optional ``.N`` index, or ``AUTO:GPU,CPU`` style lists)
DEVICES: tuple[str, ...] = ("CPU", "GPU", "NPU", "AUTO")


def import_openvino() -> Any:
    """``import openvino``, or one clear error naming the extra."""
    try:
        import openvino as ov
    except ImportError as e:
        raise EdgecnnError(f"provider 'openvino' needs the openvino package ({e}): pip install 'edgecnn[openvino]' "
                           "(or 'edgecnn[cpu,openvino]' beside ONNX Runtime).") from None
    return ov


def openvino_version() -> str | None:
    """The installed openvino distribution's version (found without importing it), or None."""
    import importlib.metadata

    try:
        return importlib.metadata.version("openvino")
    except importlib.metadata.PackageNotFoundError:
        return None


def default_cache_dir() -> Path:
    """``<edgecnn cache>/openvino``: OpenVINO's compiled-model cache (``CACHE_DIR``)."""
    from edgecnn._io import user_cache_dir

    return user_cache_dir() / "openvino"


def _check_device(device: str, available: list[str]) -> str:
    dev = device.strip().upper()
    base = dev.split(":", 1)[0].split(".", 1)[0]
    if base in ("AUTO", "MULTI", "HETERO", "BATCH"):
        return dev
    if base not in DEVICES:
        raise EdgecnnError(f"unknown OpenVINO device {device!r}: choose one of {', '.join(DEVICES)} "
                           f"(this machine has {', '.join(available) or 'none'}).")
    if not any(a == dev or a.split(".", 1)[0] == dev for a in available):
        raise EdgecnnError(f"OpenVINO device {dev} is not available: this machine has {', '.join(available) or 'none'} "
                           "(GPU needs Intel's GPU driver, NPU Intel's NPU driver; run 'edgecnn doctor').")
    return dev


def _shape(port: Any) -> tuple[Any, ...]:
    return tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())


class OpenVINOBackend:
    """A compiled OpenVINO model with the small interface :class:`Engine` uses.

    ``inputs``/``outputs``: ``(name, shape, numpy dtype)`` triples (None for a dynamic dim); ``provider``:
    ``OpenVINO:<device that runs it>``; ``precision``: the inference precision actually used; ``run(x)``:
    every output for one NCHW batch. ``config`` overrides any OpenVINO property set here.
    """

    def __init__(self, path: str | os.PathLike, choice: PrecisionChoice, *, device: str = "CPU",
                 threads: int | None = None, cache_dir: str | os.PathLike | None = None,
                 config: Mapping[str, Any] | None = None) -> None:
        ov = import_openvino()
        self.path = Path(path)
        self.core = ov.Core()
        self.device = _check_device(device or "CPU", list(self.core.available_devices))
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        self.cache_dir = cache
        props: dict[str, Any] = {"CACHE_DIR": str(cache)}
        if choice.openvino_hint:
            props["INFERENCE_PRECISION_HINT"] = choice.openvino_hint
        if threads and self.device.startswith("CPU"):
            props["INFERENCE_NUM_THREADS"] = int(threads)
        props.update(dict(config or {}))
        self.config = {k: str(v) for k, v in props.items()}
        try:
            self.compiled = self.core.compile_model(str(self.path), self.device, props)
        except Exception as e:
            text = str(e).strip().splitlines()
            reason = next((ln.strip() for ln in text if ln.strip() and not ln.startswith("Exception from")),
                          type(e).__name__)
            raise EdgecnnError(f"OpenVINO cannot compile {self.path} for {self.device}: {reason[:300]}") from None
        self.execution_devices = self._prop("EXECUTION_DEVICES") or [self.device]
        self.provider = f"{OPENVINO}:{','.join(map(str, self.execution_devices))}"
        actual = self._prop("INFERENCE_PRECISION_HINT")
        self.float_precision = from_openvino(actual) if actual is not None else None
        if choice.inference in ("fp32", "bf16", "fp16") and self.float_precision not in (None, choice.inference):
            raise EdgecnnError(f"OpenVINO on {self.device} would run {self.path.name} at {self.float_precision}, "
                               f"not the requested {choice.inference}: pick --precision auto or "
                               f"{self.float_precision}.")
        if choice.inference == "default":
            self.precision = self.float_precision or "default"
        else:
            self.precision = choice.inference
        self.threads = self._prop("INFERENCE_NUM_THREADS")
        self.inputs = [(p.get_any_name(), _shape(p), np.dtype(p.get_element_type().to_dtype()))
                       for p in self.compiled.inputs]
        self.outputs = [(p.get_any_name(), _shape(p), np.dtype(p.get_element_type().to_dtype()))
                        for p in self.compiled.outputs]
        self._pool: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def _prop(self, name: str) -> Any:
        try:
            return self.compiled.get_property(name)
        except Exception:  # not every device/plugin reports every property
            return None

    def _request(self) -> Any:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            return self.compiled.create_infer_request()

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """All outputs for one batch; safe to call from several threads at once."""
        req = self._request()
        try:
            req.infer({0: x})
            return [req.get_output_tensor(i).data.copy() for i in range(len(self.outputs))]
        finally:
            self._pool.put(req)

    def profile(self, x: np.ndarray, runs: int) -> list[list[dict[str, Any]]]:
        """Per-node performance counters of ``runs`` runs (after one warm-up), one list per run; needs the
        backend compiled with ``config={"PERF_COUNT": True}``. Nodes that did not execute are left out."""
        req = self.compiled.create_infer_request()
        req.infer({0: x})
        out = []
        for _ in range(runs):
            req.infer({0: x})
            out.append([{"node": p.node_name, "op": p.node_type, "kernel": p.exec_type,
                         "us": p.real_time.total_seconds() * 1e6}
                        for p in req.get_profiling_info() if str(p.status).endswith("EXECUTED")])
        return out


def openvino_info() -> dict[str, Any]:
    """OpenVINO version and devices (with their full names) for ``edgecnn doctor``; never raises."""
    info: dict[str, Any] = {"version": openvino_version(), "devices": {}, "error": None}
    if info["version"] is None:
        return info
    try:
        import openvino as ov

        core = ov.Core()
        info["runtime_version"] = ov.get_version()
        for dev in core.available_devices:
            try:
                name = core.get_property(dev, "FULL_DEVICE_NAME")
                caps = [str(c) for c in core.get_property(dev, "OPTIMIZATION_CAPABILITIES")]
            except Exception:
                name, caps = dev, []
            info["devices"][dev] = {"name": str(name), "capabilities": caps}
    except Exception as e:
        info["error"] = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return info
