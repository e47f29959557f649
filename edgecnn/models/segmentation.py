"""Semantic segmentation: torchvision's DeepLabV3 and LR-ASPP with a MobileNetV3-Large backbone (520x520).

The models *are* torchvision's (its builders, ``weights=None, weights_backbone=None, aux_loss=False``: nothing
downloaded, a torchvision ``state_dict`` of the same head loads with ``strict=True``), seeded random weights by
default. Their forward returns ``{"out": (N, C, H, W)}`` per-pixel class scores at the input size; the export
keeps that output, named ``masks``.
"""

from __future__ import annotations

from torch import nn

from edgecnn.models._torchvision import torchvision
from edgecnn.models.detection import _seeded
from edgecnn.models.registry import register_model

_NOTE = "21 Pascal VOC classes, 0 = background"
#: images of this size set the seeded model's batch-norm statistics (a quarter of 520x520's work; the statistics
#: of these fully convolutional models barely depend on the size)
CALIBRATION_SIZE = (256, 256)


def _forward(model: nn.Module, x) -> None:
    model(x)


@register_model("deeplabv3_mobilenet_v3_large", "deeplabv3", group="tasks", task="segmentation",
                torchvision_compatible=True, macs=10_436_350_688, input_size=(520, 520), num_classes=21,
                resize="stretch", reference="Chen et al. 2017 (DeepLabV3); torchvision's builder",
                notes=f"torchvision.models.segmentation.deeplabv3_mobilenet_v3_large; {_NOTE}")
def deeplabv3_mobilenet_v3_large(num_classes: int = 21) -> nn.Module:
    """torchvision's DeepLabV3 (MobileNetV3-Large backbone, no aux head; Chen et al. 2017): 11,025,477 parameters."""
    tv = torchvision()
    return _seeded(lambda: tv.models.segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False), _forward, CALIBRATION_SIZE)


@register_model("lraspp_mobilenet_v3_large", "lraspp", group="tasks", task="segmentation",
                torchvision_compatible=True, macs=2_086_219_688, input_size=(520, 520), num_classes=21,
                resize="stretch", reference="Howard et al. 2019 (LR-ASPP); torchvision's builder",
                notes=f"torchvision.models.segmentation.lraspp_mobilenet_v3_large; {_NOTE}")
def lraspp_mobilenet_v3_large(num_classes: int = 21) -> nn.Module:
    """torchvision's LR-ASPP (MobileNetV3-Large backbone; Howard et al. 2019): 3,221,538 parameters."""
    tv = torchvision()
    return _seeded(lambda: tv.models.segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=num_classes), _forward, CALIBRATION_SIZE)


def voc_labels() -> list[str]:
    """torchvision's 21 Pascal VOC category names (index = the model's class)."""
    torchvision()
    from torchvision.models._meta import _VOC_CATEGORIES

    return list(_VOC_CATEGORIES)
