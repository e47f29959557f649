"""Model registry: a decorator registers a builder with its spec; listing and creation go through here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from edgecnn.errors import EdgecnnError, unknown_name

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: What a model does: the task seam (post-processing, metrics and validation are chosen by it). A file without
#: ``edgecnn.task`` metadata is a classifier.
TASKS = ("classification", "detection", "segmentation")
#: How an image becomes the input: ``crop`` (resize the shorter side, center crop: ImageNet evaluation),
#: ``stretch`` (resize to the input size, aspect ratio not kept: torchvision's detection/segmentation transforms)
RESIZES = ("crop", "stretch")

#: The zoo's groups: the classic ImageNet CNNs (LeNet-5 to ResNet), the mobile-first families, and the detectors and
#: segmenters built by torchvision (``tasks``).
GROUPS = ("classic", "mobile", "tasks")


@dataclass(frozen=True)
class ModelSpec:
    """What a zoo model is: enough for export metadata, preprocessing and the ``list`` table."""

    name: str
    family: str
    builder: Callable[..., nn.Module] = field(repr=False, compare=False)
    #: ``classic`` (LeNet-5 ... ResNet) or ``mobile`` (depthwise-separable and other edge-first families)
    group: str = "classic"
    #: multiply-accumulates of one image at ``input_size`` (Conv and Linear only; tested against the graph)
    macs: int = 0
    input_size: tuple[int, int] = (224, 224)
    channels: int = 3
    num_classes: int = 1000
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    reference: str = ""
    torchvision_compatible: bool = False
    notes: str = ""
    #: submodules used only in training mode (e.g. GoogLeNet's aux heads): absent from exports.
    train_only: tuple[str, ...] = ()
    #: classification, detection or segmentation (:data:`TASKS`)
    task: str = "classification"
    #: crop or stretch (:data:`RESIZES`)
    resize: str = "crop"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one input image."""
        return (self.channels, *self.input_size)

    def describe(self, num_params: int | None = None) -> dict[str, Any]:
        """Plain-data description (JSON-ready)."""
        d = asdict(self)
        d.pop("builder")
        d["input_shape"] = list(self.input_shape)
        d["input_size"] = list(self.input_size)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["train_only"] = list(self.train_only)
        if num_params is not None:
            d["num_params"] = num_params
        return d


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, family: str, **spec: Any) -> Callable[[Callable[..., nn.Module]], Callable]:
    """Decorator: register ``builder(num_classes=..., **kwargs) -> nn.Module`` under ``name``."""

    def deco(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        if spec.get("group", "classic") not in GROUPS:
            raise ValueError(f"model {name!r}: group must be one of {GROUPS}")
        if spec.get("task", "classification") not in TASKS or spec.get("resize", "crop") not in RESIZES:
            raise ValueError(f"model {name!r}: task must be one of {TASKS}, resize one of {RESIZES}")
        _REGISTRY[name] = ModelSpec(name=name, family=family, builder=builder, **spec)
        return builder

    return deco


def list_models(family: str | None = None, group: str | None = None, task: str | None = None) -> list[str]:
    """Names of the registered models, classic, mobile then tasks, each in registration order (optionally one
    family, group and/or task)."""
    return [s.name for s in _ordered()
            if (family is None or s.family == family) and (group is None or s.group == group)
            and (task is None or s.task == task)]


def _ordered() -> list[ModelSpec]:
    return sorted(_REGISTRY.values(), key=lambda s: GROUPS.index(s.group))


def get_spec(name: str) -> ModelSpec:
    """The spec of a zoo model; an unknown name raises an error suggesting the closest names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_name("model", name, _REGISTRY) from None


def create_model(name: str, num_classes: int | None = None, weights: str | None = None,
                 **kwargs: Any) -> nn.Module:
    """Build a zoo model (random init, deterministic under ``torch.manual_seed``).

    ``weights`` is a local ``.pth``/``.pt`` state dict (torchvision's or edgecnn's); nothing is
    downloaded. The model carries its spec as ``model.spec``.
    """
    spec = get_spec(name)
    n = spec.num_classes if num_classes is None else int(num_classes)
    if n < 1:
        raise EdgecnnError(f"num_classes must be >= 1, got {n}")
    try:
        model = spec.builder(num_classes=n, **kwargs)
    except TypeError as e:
        raise EdgecnnError(f"bad option for model {name!r}: {e}") from None
    model.spec = spec if n == spec.num_classes else _replace(spec, num_classes=n)
    if weights is not None:
        from edgecnn.models.weights import load_weights

        load_weights(model, weights)
    return model


def _replace(spec: ModelSpec, **changes: Any) -> ModelSpec:
    from dataclasses import replace

    return replace(spec, **changes)


def count_params(model: nn.Module, exclude: tuple[str, ...] = ()) -> int:
    """Number of parameters (buffers excluded), leaving out submodules whose name starts with ``exclude``."""
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith(exclude))


def inference_params(model: nn.Module) -> int:
    """Parameters used at inference: without the spec's training-only submodules (aux heads)."""
    spec = getattr(model, "spec", None)
    return count_params(model, tuple(f"{m}." for m in spec.train_only) if spec else ())


def describe_all(group: str | None = None) -> list[dict[str, Any]]:
    """Every model's spec (optionally one group) with its parameter counts and GMACs at its input size.

    Rows are ordered by group (classic, then mobile), then registration order. Models are built on the meta
    device: no memory, fast.
    """
    rows = []
    for spec in _ordered():
        if group is not None and spec.group != group:
            continue
        try:
            with torch.device("meta"):
                model = spec.builder(num_classes=spec.num_classes)
        except EdgecnnError:  # a torchvision model without torchvision installed: listed, not counted
            model = None
        d = spec.describe(count_params(model) if model is not None else None)
        d["inference_params"] = (count_params(model, tuple(f"{m}." for m in spec.train_only))
                                 if model is not None else None)
        d["gmacs"] = spec.macs / 1e9
        rows.append(d)
    return rows
