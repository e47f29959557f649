"""The only torch-backed parts of the profiler; torch is imported inside the functions, never at import time.

* :func:`profile_module` — theoretical cost of any ``torch.nn.Module`` (a whole model, one Inception
  module, one residual block, one convolution) by exporting it to ONNX in memory and counting the graph
  with the same rules as every ``.onnx`` file.
* :func:`torch_latencies` — the same model in torch eager, same threads and inputs (``bench --compare torch``).
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgecnn import onnxfile
from edgecnn.errors import EdgecnnError
from edgecnn.profiler.cost import GraphCost, graph_cost


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise EdgecnnError(f"this needs torch ({e}); install the export extra: pip install 'edgecnn[export]'") \
            from None
    return torch


def profile_module(module: Any, input_shape: Sequence[int], *, name: str | None = None,
                   opset: int = 17) -> GraphCost:
    """Theoretical cost of ``module`` on one input of ``input_shape``: (C, H, W), or (N, C, H, W) for a batch.

    The module is exported (TorchScript exporter, eval mode, in memory) and counted like any ``.onnx``
    file, so the numbers match ``edgecnn profile`` on the exported model.
    """
    torch = _torch()

    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) < 2:
        raise EdgecnnError(f"input_shape must be (C, H, W) or (N, C, H, W), got {list(input_shape)}")
    was_training = module.training
    module.eval()
    buf = io.BytesIO()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and folding notes
            torch.onnx.export(module, torch.zeros(shape), buf, dynamo=False, opset_version=opset,
                              input_names=["input"], output_names=["output"])
    finally:
        module.train(was_training)
    proto = onnxfile.from_bytes(buf.getvalue(), type(module).__name__)
    return graph_cost(proto, batch=shape[0], name=name or type(module).__name__)


def load_torch_model(model: str, metadata: dict[str, Any] | None = None) -> Any:
    """A zoo model in eval mode for ``--compare torch``: by zoo name, or by the ``model`` key of a file's
    metadata (random weights: timing does not depend on them)."""
    _torch()
    from edgecnn.models import create_model, list_models

    name = model
    if name not in list_models():
        name = str((metadata or {}).get("model") or "")
        if name not in list_models():
            raise EdgecnnError(f"--compare torch needs a zoo model; {model!r} is neither a zoo name nor a file "
                               "exported from the zoo (its metadata names no zoo model)")
    return create_model(name, num_classes=(metadata or {}).get("num_classes")).eval()


def torch_latencies(module: Any, x: np.ndarray, *, threads: int, warmup: int, iters: int | None,
                    duration: float | None, tick: Callable[[], None] | None = None) -> list[float]:
    """Latencies (seconds) of ``module(x)`` in torch eager on CPU with ``threads`` intra-op threads."""
    torch = _torch()
    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        out: list[float] = []
        with torch.inference_mode():
            for _ in range(warmup):
                module(xt)
            start = time.perf_counter()
            while True:
                t0 = time.perf_counter()
                module(xt)
                out.append(time.perf_counter() - t0)
                if tick:
                    tick()
                if iters is not None and len(out) >= iters:
                    break
                if iters is None and time.perf_counter() - start >= (duration or 0):
                    break
        return out
    finally:
        torch.set_num_threads(previous)
