"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every test run gets its own edgecnn cache (exports, peak, TensorRT): shared within the run, never the
    user's ``~/.cache/edgecnn``."""
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGECNN_CACHE_DIR", str(tmp_path_factory.mktemp("edgecnn-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def zoo_onnx(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``zoo_onnx(name)``: the zoo model exported once per session (TorchScript exporter, opset 17, eval,
    random weights under seed 0, dynamic batch, input ``input``, output ``logits``). Real models, so
    parameter counts are exact; the export is plain (no simplification, no metadata)."""
    folder = tmp_path_factory.mktemp("zoo_onnx")
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            import torch

            from edgecnn.models import create_model

            torch.manual_seed(0)
            model = create_model(name).eval()
            x = torch.zeros(1, *model.spec.input_shape)
            path = folder / f"{name}.onnx"
            with torch.no_grad():
                torch.onnx.export(model, x, str(path), dynamo=False, opset_version=17, input_names=["input"],
                                  output_names=["logits"],
                                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
            cache[name] = path
        return cache[name]

    return get


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., object]:
    """``exported(name, precision="fp32", **options)``: an :class:`edgecnn.exporters.ExportResult` of the full
    edgecnn export (simplified, fp16 if asked, metadata, validated), made once per session per arguments
    (``options`` as for ``edgecnn.exporters.export``, e.g. ``input_size=(64, 64)``). ``.path`` is the file."""
    folder = tmp_path_factory.mktemp("exported")
    cache: dict[tuple, object] = {}

    def get(name: str, precision: str = "fp32", **options: object) -> object:
        key = (name, precision, tuple(sorted(options.items())))
        if key not in cache:
            import torch

            from edgecnn.exporters import export

            torch.manual_seed(0)
            out = folder / f"{name}-{precision}-{len(cache)}.onnx"
            cache[key] = export(name, out, precision=precision, progress=False, **options)
        return cache[key]

    return get
