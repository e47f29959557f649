"""Object detection: torchvision's SSDlite (MobileNetV3-Large, 320x320), built by torchvision's own builder.

The model *is* torchvision's ``SSD`` (so a torchvision ``state_dict`` loads with ``strict=True``), seeded random
weights by default; nothing is downloaded (``weights=None, weights_backbone=None``: the reduced tail of the COCO
checkpoint). What is exported is :class:`RawDetector`: backbone, head and box decoding on the normalised
320x320 input, giving every anchor's box (x1, y1, x2, y2 in input pixels, clipped) and class probabilities
(softmax, class 0 = background). Per-class NMS is placed after it, in the graph or on the host
(``exporters/nms.py``, ``runtime/vision/detection.py``); :func:`reference_detections` is torchvision's own
post-processing (``SSD.postprocess_detections``), the reference both placements are validated against.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgecnn.models._torchvision import torchvision
from edgecnn.models.registry import register_model

#: SSDlite's post-processing (torchvision's defaults for ssdlite320_mobilenet_v3_large)
SSDLITE_POSTPROCESS = {"score_threshold": 0.001, "iou_threshold": 0.55, "topk_candidates": 300,
                       "detections_per_image": 300}


def _seeded(build: Any, forward: Any, size: tuple[int, int], seed: int = 0) -> nn.Module:
    """``build()`` under ``seed``, then its batch-norm statistics estimated on seeded synthetic images.

    torchvision initialises these models for training from a pretrained backbone: with random weights and the
    default running statistics (mean 0, variance 1) the activations shrink by ~30x per layer (SSDlite's features
    reach 1e-14, every score is 1/91), so nothing could tell a right export from a wrong one. One pass in training
    mode over six seeded images (smooth random fields plus noise) sets each batch norm's running mean and variance
    to what it sees, as a real checkpoint's are: activations of unit scale, scores that differ. Weights stay random
    and seeded; a ``--weights`` checkpoint replaces the statistics."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
        if any(p.is_meta for p in model.parameters()):
            return model  # describe_all's meta-device build: nothing to estimate
        bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [bn.momentum for bn in bns]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # a cumulative average over the pass
        h, w = size
        g = torch.Generator().manual_seed(seed)
        fields = torch.nn.functional.interpolate(torch.rand(6, 3, h // 16, w // 16, generator=g), size=(h, w),
                                                 mode="bilinear", align_corners=False)
        x = (fields + 0.1 * torch.randn(6, 3, h, w, generator=g) - 0.5) / 0.25
        model.train()
        with torch.no_grad():
            forward(model, x)
        for bn, momentum in zip(bns, momenta, strict=True):
            bn.momentum = momentum
        return model.eval()


@register_model("ssdlite320_mobilenet_v3_large", "ssdlite", group="tasks", task="detection",
                torchvision_compatible=True, macs=583_171_904, input_size=(320, 320), num_classes=91,
                mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), resize="stretch",
                reference="Sandler et al. 2018 (SSDLite); Howard et al. 2019 (MobileNetV3); torchvision's builder",
                notes="torchvision.models.detection.ssdlite320_mobilenet_v3_large; 91 COCO ids, 0 = background")
def ssdlite320_mobilenet_v3_large(num_classes: int = 91) -> nn.Module:
    """torchvision's SSDlite320 (MobileNetV3-Large backbone, reduced tail; Howard et al. 2019): 3,440,060 parameters."""
    tv = torchvision()
    return _seeded(lambda: tv.models.detection.ssdlite320_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=num_classes),
        lambda m, x: m.head(list(m.backbone(x).values())), (320, 320))


def coco_labels() -> list[str]:
    """torchvision's 91 COCO category names (index = the model's label; ``__background__`` and ``N/A`` gaps)."""
    torchvision()
    from torchvision.models._meta import _COCO_CATEGORIES

    return list(_COCO_CATEGORIES)


class RawDetector(nn.Module):
    """An SSD's graph up to NMS: normalised images (N, 3, H, W) -> boxes (N, A, 4), scores (N, A, C).

    The anchors depend only on the input size: computed once here with torchvision's anchor generator and kept
    as a constant. Boxes are decoded with torchvision's ``BoxCoder`` and clipped to the input, as
    ``SSD.postprocess_detections`` does; scores are its softmax."""

    def __init__(self, model: nn.Module, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.model = model
        tv = torchvision()
        from torchvision.models.detection.image_list import ImageList

        h, w = input_size
        with torch.no_grad():
            x = torch.zeros(1, 3, h, w)
            feats = list(model.backbone(x).values())
            anchors = model.anchor_generator(ImageList(x, [(h, w)]), feats)[0]
        self.register_buffer("anchors", anchors, persistent=False)
        self.size = (h, w)
        self._clip = tv.ops.boxes.clip_boxes_to_image

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = list(self.model.backbone(x).values())
        head = self.model.head(feats)
        reg, logits = head["bbox_regression"], head["cls_logits"]
        n, a = reg.shape[0], reg.shape[1]
        anchors = self.anchors.unsqueeze(0).expand(n, a, 4).reshape(-1, 4)
        boxes = self.model.box_coder.decode_single(reg.reshape(-1, 4), anchors).reshape(n, a, 4)
        boxes = self._clip(boxes, self.size)
        return boxes, torch.softmax(logits, dim=-1)


def reference_detections(model: nn.Module, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """torchvision's own detections for normalised images ``x``: boxes in input pixels, scores, labels."""
    feats = list(model.backbone(x).values())
    head = model.head(feats)
    from torchvision.models.detection.image_list import ImageList

    sizes = [(int(x.shape[-2]), int(x.shape[-1]))] * x.shape[0]
    anchors = model.anchor_generator(ImageList(x, sizes), feats)
    with torch.no_grad():
        return model.postprocess_detections(head, anchors, sizes)
