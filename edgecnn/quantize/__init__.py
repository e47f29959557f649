"""int8 post-training quantization of any fp32 ``.onnx`` file with ``onnxruntime.quantization`` (no torch).

    from edgecnn.quantize import quantize, quantize_model

    quantize("resnet50.onnx", calib="calib_images/")                # -> resnet50.int8.onnx (static QDQ)
    run = quantize_model("lenet5.onnx", calib="digits/train", eval_data="digits/test", keep_float=1)
    print(run.to_dict())                                             # what 'edgecnn quantize --json' prints

One module per job: ``options`` (what and how), ``calibration`` (calibration data and readers), ``qdq``
(quantization), ``heads`` (head-aware defaults for detectors and segmenters: what stays float and why),
``taskeval`` (a task file's accuracy against fp32, and the seam for labelled mAP/mIoU), ``layer_error`` (per-layer
error: ``explain``), ``keep_float`` (re-quantization with the worst layers in
float: a number of them, or the fewest that meet a target, shared with ``edgecnn optimize``), ``tensorrt``
(calibration table for ONNX Runtime's TensorRT provider) and ``workflow`` (all of it as the ``quantize``
command runs it). Names load lazily.
"""

from __future__ import annotations

from edgecnn._lazy import lazy_attributes

_LAZY = {
    "QuantizeOptions": ".options",
    "QuantizeResult": ".options",
    "MODES": ".options",
    "FORMATS": ".options",
    "METHODS": ".options",
    "QTYPES": ".options",
    "CalibrationData": ".calibration",
    "ArrayReader": ".calibration",
    "RandomCalibrationWarning": ".calibration",
    "load_calibration": ".calibration",
    "fit_batch": ".calibration",
    "show_progress": ".calibration",
    "quantize": ".qdq",
    "default_output": ".qdq",
    "preprocess_config": ".qdq",
    "HeadPlan": ".heads",
    "head_plan": ".heads",
    "RANGE_FACTOR": ".heads",
    "TaskMetric": ".taskeval",
    "TaskReport": ".taskeval",
    "compare_task_models": ".taskeval",
    "task_accept": ".taskeval",
    "LayerError": ".layer_error",
    "explain": ".layer_error",
    "quantize_keep_float": ".keep_float",
    "keep_float_search": ".keep_float",
    "KeepFloatResult": ".keep_float",
    "target_accept": ".keep_float",
    "write_tensorrt_calibration": ".tensorrt",
    "tensorrt_provider_options": ".tensorrt",
    "QuantizeRun": ".workflow",
    "calibration_for": ".workflow",
    "quantize_model": ".workflow",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


__all__ = list(_LAZY)
