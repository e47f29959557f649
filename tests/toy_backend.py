"""A third backend from outside the package: the worked example of docs/architecture.md ("How to add a backend").

``ToyBackend`` runs a file with numpy's help around a bare ``onnxruntime.InferenceSession`` (no edgecnn runtime
code): registered with ``edgecnn.runtime.backends.register(ToyBackend())`` it works in ``bench``, ``predict``,
``evaluate`` and ``optimize`` with no edit to ``edgecnn/``. Its ``fp16`` is a flag it ignores, so its "fp16"
outputs equal fp32 bit for bit: edgecnn must report them as fp32 and never choose them as fp16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError
from edgecnn.runtime.backends import Backend, OpenOptions, Runner, TensorInfo
from edgecnn.runtime.precision import CpuFeatures, PrecisionChoice

_NUMPY = {"tensor(float)": "float32", "tensor(float16)": "float16"}


class ToyRunner(Runner):
    """A compiled model: here an ONNX Runtime session on one thread, described with edgecnn's TensorInfo."""

    def __init__(self, path: Path, choice: PrecisionChoice, options: OpenOptions) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = int(options.threads)
        self._session = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
        self.inputs = tuple(TensorInfo(i.name, tuple(i.shape), _NUMPY.get(i.type, "float32"))
                            for i in self._session.get_inputs())
        self.outputs = tuple(TensorInfo(o.name, tuple(o.shape), _NUMPY.get(o.type, "float32"))
                             for o in self._session.get_outputs())
        self.providers = ("toy:cpu",)
        self.device = "cpu"
        self.precision = choice.inference  # what it claims; the Engine checks it on probe inputs
        self.threads = int(options.threads)
        self.provider_options = {"toy:cpu": {k: str(v) for k, v in choice.flags.items()}}

    def run(self, x: np.ndarray, output_names: list[str]) -> list[np.ndarray]:
        return self._session.run(output_names, {self.inputs[0].name: np.ascontiguousarray(x)})


class ToyBackend(Backend):
    """fp32 files at fp32, and a "fp16" that is a flag it ignores."""

    name = "toy"
    family = "toy"
    label = "the toy backend (tests/toy_backend.py)"

    def unavailable(self) -> str | None:
        import importlib.util

        return None if importlib.util.find_spec("onnxruntime") else "the toy backend wraps onnxruntime"

    def versions(self) -> dict[str, str]:
        return {"toy": "1.0"}

    def owns(self, provider: str) -> bool:
        return provider in (self.name, "toy:cpu")

    def file_for(self, precision: str) -> str | None:
        return {"fp32": "fp32", "fp16": "fp32"}.get(precision)  # its fp16 is a flag on the fp32 file

    def plan(self, requested: str, *, file_precision: str, cpu: CpuFeatures, device: str = "CPU",
             file_name: str = "this file") -> PrecisionChoice:
        if file_precision != "fp32" or requested not in ("fp32", "fp16"):
            raise EdgecnnError(f"the toy backend runs fp32 files at fp32 or fp16, not {file_name} ({file_precision}) "
                               f"at {requested}.")
        flags: dict[str, Any] = {"toy_fp16": True} if requested == "fp16" else {}
        return PrecisionChoice(requested, "fp32", requested, flags=flags, reason=f"the toy backend at {requested}")

    def open(self, path: Path, choice: PrecisionChoice, options: OpenOptions) -> ToyRunner:
        return ToyRunner(path, choice, options)


class BrokenBackend(ToyBackend):
    """A backend whose device cannot load (every compile fails)."""

    name = "broken"

    def open(self, path: Path, choice: PrecisionChoice, options: OpenOptions) -> ToyRunner:
        raise RuntimeError("the fake runtime cannot load its device")
