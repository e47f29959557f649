"""edgecnn's runtime: run ``.onnx`` files on ONNX Runtime (CPU, CUDA, TensorRT) or OpenVINO without torch.

    from edgecnn.runtime import Engine, load_images, topk

    engine = Engine("resnet18.onnx", provider="auto")
    x = load_images(["cat.jpg", "dog.jpg"], engine.preprocess_config())
    print(topk(engine.run(x), k=5))

Only onnxruntime or openvino, numpy, Pillow and the standard library are imported, never torch. Names load
lazily, so ``edgecnn doctor`` still works when onnxruntime itself is broken.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgecnn._lazy import lazy_attributes

_EXPORTS: dict[str, str] = {
    # engine
    "Engine": "engine",
    "EngineInfo": "engine",
    "TensorInfo": "engine",
    "GRAPH_OPTIMIZATIONS": "engine",
    "default_threads": "engine",
    # providers
    "resolve_providers": "backends.ort_providers",
    "build_providers": "backends.ort_providers",
    "provider_options": "backends.ort_providers",
    "check_registered": "backends.ort_providers",
    "available_providers": "backends.ort_providers",
    "ort_distributions": "backends.ort_providers",
    "ProviderConfig": "backends.ort_providers",
    "Resolution": "backends.ort_providers",
    "ProviderFallbackWarning": "backends.ort_providers",
    "PROVIDERS": "backends.ort_providers",
    # precision
    "PRECISIONS": "precision",
    "CpuFeatures": "precision",
    "PrecisionChoice": "precision",
    "detect_cpu": "precision",
    "resolve_precision": "precision",
    # batching
    "Batcher": "batcher",
    "BatcherStats": "batcher",
    # preprocessing
    "PreprocessConfig": "images",
    "preprocess": "images",
    "load_images": "images",
    "open_image": "images",
    # postprocessing
    "topk": "postprocess",
    "softmax": "postprocess",
    "to_probabilities": "postprocess",
    "class_names": "postprocess",
    "imagenet_classes": "postprocess",
    # predict
    "predict": "classify",
}

__all__ = [
    "PRECISIONS",
    "PROVIDERS",
    "Batcher",
    "BatcherStats",
    "CpuFeatures",
    "Engine",
    "EngineInfo",
    "GRAPH_OPTIMIZATIONS",
    "PrecisionChoice",
    "PreprocessConfig",
    "ProviderConfig",
    "ProviderFallbackWarning",
    "Resolution",
    "TensorInfo",
    "available_providers",
    "build_providers",
    "check_registered",
    "class_names",
    "default_threads",
    "detect_cpu",
    "imagenet_classes",
    "load_images",
    "open_image",
    "ort_distributions",
    "predict",
    "preprocess",
    "provider_options",
    "resolve_precision",
    "resolve_providers",
    "softmax",
    "to_probabilities",
    "topk",
]

if TYPE_CHECKING:  # pragma: no cover
    from edgecnn.runtime.backends.ort_providers import (
        PROVIDERS,
        ProviderConfig,
        ProviderFallbackWarning,
        Resolution,
        available_providers,
        build_providers,
        check_registered,
        ort_distributions,
        provider_options,
        resolve_providers,
    )
    from edgecnn.runtime.batcher import Batcher, BatcherStats
    from edgecnn.runtime.classify import predict
    from edgecnn.runtime.engine import GRAPH_OPTIMIZATIONS, Engine, EngineInfo, TensorInfo, default_threads
    from edgecnn.runtime.images import PreprocessConfig, load_images, open_image, preprocess
    from edgecnn.runtime.postprocess import class_names, imagenet_classes, softmax, to_probabilities, topk
    from edgecnn.runtime.precision import PRECISIONS, CpuFeatures, PrecisionChoice, detect_cpu, resolve_precision


__getattr__, __dir__ = lazy_attributes(__name__, {name: f".{module}" for name, module in _EXPORTS.items()})
