"""The shapes task's small detector and segmenter (128x128), built from torchvision's SSD and LR-ASPP classes.

* ``shapes_ssd``: torchvision's ``SSD`` (Liu et al. 2016) with its ``SSDHead`` and ``DefaultBoxGenerator`` over three
  feature maps (strides 8, 16, 32) of :class:`TinyBackbone`: anchors of 10% to 60% of the image, four per location.
* ``shapes_lraspp``: torchvision's ``LRASPP`` head (Howard et al. 2019) on the same kind of backbone, its low-level
  branch at stride 4 and its high-level one at stride 16.

The backbone is a plain stack of the zoo's :class:`~edgecnn.models.blocks.ConvBNAct` (3x3 conv, batch norm, ReLU):
dense 3x3 convolutions train fastest on a CPU, and at 128x128 the detector costs about 19 M MACs. Both are exported
like the torchvision task models (``exporters/tasks.py``: NMS in the graph or on the host, ``masks``); their
trained weights come from :mod:`edgecnn.tasks.shapes`. Classes: 0 background, 1 circle, 2 square, 3 triangle,
4 cross (:data:`SHAPES_LABELS`).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from edgecnn.models._torchvision import torchvision
from edgecnn.models.blocks import ConvBNAct
from edgecnn.models.detection import _seeded
from edgecnn.models.registry import register_model

SHAPES_LABELS = ["__background__", "circle", "square", "triangle", "cross"]
SIZE = (128, 128)
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
#: (out channels, stride) per ConvBNAct; a feature map is taken after the layers named in ``outputs``
STAGES = [(16, 2), (24, 2), (32, 2), (48, 1), (64, 2), (96, 2)]
#: anchor scales (fractions of the image side) of the three detection feature maps, plus the last's upper bound
ANCHOR_SCALES = [0.1, 0.2, 0.38, 0.6]
#: torchvision SSD post-processing for the task (COCO evaluation keeps 100 detections per image)
POSTPROCESS = {"score_thresh": 0.01, "nms_thresh": 0.45, "detections_per_img": 100, "topk_candidates": 200}


class TinyBackbone(nn.Module):
    """ConvBNAct layers from :data:`STAGES`; returns an ``OrderedDict`` of the feature maps after the layers in
    ``outputs`` (``{name: layer index}``), as torchvision's backbones do."""

    def __init__(self, outputs: dict[str, int]) -> None:
        super().__init__()
        layers, c = [], 3
        last = max(outputs.values())
        for out, stride in STAGES[:last + 1]:
            layers.append(ConvBNAct(c, out, 3, stride))
            c = out
        self.features = nn.Sequential(*layers)
        self.outputs = dict(outputs)
        self.out_channels = [STAGES[i][0] for i in outputs.values()]

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        taken: OrderedDict[str, torch.Tensor] = OrderedDict()
        at = {i: name for name, i in self.outputs.items()}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in at:
                taken[at[i]] = x
        return taken


def _ssd(num_classes: int) -> nn.Module:
    tv = torchvision()
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
    from torchvision.models.detection.ssd import SSD, SSDHead

    backbone = TinyBackbone({"s8": 3, "s16": 4, "s32": 5})
    anchors = DefaultBoxGenerator([[2], [2], [2]], scales=ANCHOR_SCALES)
    head = SSDHead(backbone.out_channels, anchors.num_anchors_per_location(), num_classes)
    del tv
    return SSD(backbone, anchors, SIZE, num_classes, image_mean=list(MEAN), image_std=list(STD), head=head,
               **POSTPROCESS)


def _ssd_forward(model: nn.Module, x: torch.Tensor) -> None:
    model.head(list(model.backbone(x).values()))


@register_model("shapes_ssd", "shapes", group="tasks", task="detection", macs=19_077_120, input_size=SIZE,
                num_classes=len(SHAPES_LABELS), mean=MEAN, std=STD, resize="stretch",
                reference="Liu et al. 2016 (SSD); torchvision's SSD, SSDHead and DefaultBoxGenerator",
                notes="the shapes task's detector (edgecnn.tasks.shapes); 4 shape classes, 0 = background")
def shapes_ssd(num_classes: int = len(SHAPES_LABELS)) -> nn.Module:
    """A small SSD (Liu et al. 2016) for the shapes task, 128x128: 175,628 parameters."""
    return _seeded(lambda: _ssd(num_classes), _ssd_forward, SIZE)


def _lraspp(num_classes: int) -> nn.Module:
    torchvision()
    from torchvision.models.segmentation.lraspp import LRASPP

    backbone = TinyBackbone({"low": 1, "high": 4})
    low, high = backbone.out_channels
    return LRASPP(backbone, low, high, num_classes, inter_channels=64)


@register_model("shapes_lraspp", "shapes", group="tasks", task="segmentation", macs=13_103_104, input_size=SIZE,
                num_classes=len(SHAPES_LABELS), mean=MEAN, std=STD, resize="stretch",
                reference="Howard et al. 2019 (LR-ASPP); torchvision's LRASPP head",
                notes="the shapes task's segmenter (edgecnn.tasks.shapes); 4 shape classes, 0 = background")
def shapes_lraspp(num_classes: int = len(SHAPES_LABELS)) -> nn.Module:
    """A small LR-ASPP (Howard et al. 2019) for the shapes task, 128x128: 61,410 parameters."""
    return _seeded(lambda: _lraspp(num_classes), lambda m, x: m(x), SIZE)


def shapes_labels() -> list[str]:
    """The shapes task's class names (index = the model's class)."""
    return list(SHAPES_LABELS)
