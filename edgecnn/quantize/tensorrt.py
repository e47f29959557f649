"""int8 for ONNX Runtime's TensorRT provider: the calibration table of the *fp32* model and the options.

TensorRT quantizes implicitly: it runs the fp32 file and reads one dynamic range per tensor from the
table written here with ``onnxruntime.quantization.create_calibrator`` and ``write_calibration_table``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgecnn import onnxfile
from edgecnn._io import atomic_path
from edgecnn.errors import EdgecnnError
from edgecnn.quantize.calibration import ArrayReader, CalibrationData, fit_batch, load_calibration
from edgecnn.quantize.options import METHODS, calib_method
from edgecnn.quantize.qdq import default_output, preprocess_config

TRT_TABLE_FILES = ("calibration.flatbuffers", "calibration.cache", "calibration.json")


def write_tensorrt_calibration(model: str | os.PathLike, calib: Any, out_dir: str | os.PathLike | None = None, *,
                               method: str = "minmax", calib_size: int = 128, batch_size: int = 8,
                               progress: bool = False) -> dict[str, Any]:
    """Write the int8 calibration table ONNX Runtime's TensorRT provider reads, for the fp32 ``model``.

    Runs ``create_calibrator`` over every float tensor of the model, then ``write_calibration_table``:
    ``calibration.flatbuffers`` (what the TensorRT provider loads when
    ``trt_int8_use_native_calibration_table`` is false), ``calibration.cache`` (text, one
    ``tensor max-abs`` per line) and ``calibration.json``. Returns the paths and the provider options.
    """
    from onnxruntime.quantization import create_calibrator, write_calibration_table

    if method not in METHODS:
        raise EdgecnnError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}.")
    src = Path(model)
    source_model = onnxfile.open_model(src, load_data=False)
    input_name = onnxfile.input_info(source_model)[0]
    data = calib if isinstance(calib, CalibrationData) else load_calibration(
        calib, preprocess_config(source_model), limit=calib_size)
    out = Path(out_dir) if out_dir is not None else default_output(src, "trt-calib").with_suffix("")
    out.mkdir(parents=True, exist_ok=True)
    fixed = onnxfile.fixed_batch(source_model)
    with tempfile.TemporaryDirectory(prefix="edgecnn-trtcal-") as tmpdir:
        calibrator = create_calibrator(str(src), [], augmented_model_path=str(Path(tmpdir) / "augmented.onnx"),
                                       calibrate_method=calib_method(method),
                                       providers=["CPUExecutionProvider"],
                                       # symmetric ranges: the table stores max(highest, lowest), which
                                       # is the max-abs TensorRT's dynamic range needs only when symmetric
                                       extra_options={"symmetric": True})
        try:
            calibrator.collect_data(ArrayReader(input_name, fit_batch(data.data, fixed), fixed or batch_size,
                                                progress=progress))
            table = calibrator.compute_data()
        except Exception as e:  # noqa: BLE001
            raise EdgecnnError(f"TensorRT calibration of {src.name} failed: "
                               f"{(str(e).splitlines() or [''])[0][:300]}") from None
        finally:
            del calibrator
        tmp_table = Path(tmpdir) / "table"
        tmp_table.mkdir()
        write_calibration_table(table, dir=str(tmp_table))
        for name in TRT_TABLE_FILES:
            with atomic_path(out / name) as tmp:
                shutil.copyfile(tmp_table / name, tmp)
    files = {name: str(out / name) for name in TRT_TABLE_FILES}
    return {"model": str(src), "dir": str(out), "files": files, "tensors": len(table.keys()),
            "calibration": data.source, "calibration_random": data.random, "method": method,
            "provider_options": tensorrt_provider_options(out / "calibration.flatbuffers")}


def tensorrt_provider_options(table: str | os.PathLike) -> dict[str, Any]:
    """TensorRT provider options that run the fp32 model in int8 with an ONNX Runtime calibration table.

    The path is absolute: the provider joins a relative name to its ``trt_engine_cache_path``.
    """
    return {"trt_int8_enable": True, "trt_int8_calibration_table_name": str(Path(table).resolve()),
            "trt_int8_use_native_calibration_table": False}
