"""VGG (Simonyan & Zisserman 2014), configurations A, A-LRN, B, C, D, E of Table 1.

``vgg11/13/16/19`` (A, B, D, E) and their ``_bn`` variants are torchvision-compatible. ``vgg11_lrn``
(A-LRN: LRN after the first conv) and ``vgg16_c`` (C: the third conv of blocks 3-5 is 1x1) complete the
table. Parameter counts (1000 classes): A 132,863,336; A-LRN 132,863,336; B 133,047,848; C 133,638,952;
D 138,357,544; E 143,667,240 — the paper's Table 2 rounds these to 133, 133, 133, 134, 138, 144 M.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgecnn.models.registry import register_model

# ints: 3x3 conv with that many maps; (n, 1): 1x1 conv; "M": 2x2/2 max-pool; "L": LRN.
CFGS: dict[str, list] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "L", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, (256, 1), "M", 512, 512, (512, 1), "M",
          512, 512, (512, 1), "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}


def make_layers(cfg: list, batch_norm: bool = False) -> nn.Sequential:
    """The ``features`` stack of a configuration (torchvision's layer order and indices)."""
    layers: list[nn.Module] = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        elif v == "L":
            layers.append(nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0))
        else:
            out, k = v if isinstance(v, tuple) else (v, 3)
            layers.append(nn.Conv2d(in_channels, out, kernel_size=k, padding=k // 2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU(inplace=True))
            in_channels = out
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG with torchvision's module names (``features``, ``avgpool``, ``classifier``)."""

    def __init__(self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5,
                 init_weights: bool = True) -> None:
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        if init_weights:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 0.01)
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _vgg(cfg: str, batch_norm: bool, num_classes: int, dropout: float) -> VGG:
    return VGG(make_layers(CFGS[cfg], batch_norm), num_classes, dropout)


_REF = "Simonyan & Zisserman 2014, Very Deep Convolutional Networks, Table 1 config {}"
_BN = " + batch norm (Ioffe & Szegedy 2015)"


@register_model("vgg11", "vgg", torchvision_compatible=True, macs=7_609_090_048, reference=_REF.format("A"))
def vgg11(num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG-11 (Simonyan & Zisserman 2014, Table 1 config A): 132,863,336 parameters."""
    return _vgg("A", False, num_classes, dropout)


@register_model("vgg11_bn", "vgg", torchvision_compatible=True, macs=7_609_090_048,
                reference=_REF.format("A") + _BN)
def vgg11_bn(num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG-11 with batch norm (Simonyan & Zisserman 2014, Table 1 config A): 132,868,840 parameters."""
    return _vgg("A", True, num_classes, dropout)


@register_model("vgg13", "vgg", torchvision_compatible=True, macs=11_308_466_176, reference=_REF.format("B"))
def vgg13(num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG-13 (Simonyan & Zisserman 2014, Table 1 config B): 133,047,848 parameters."""
    return _vgg("B", False, num_classes, dropout)


@register_model("vgg13_bn", "vgg", torchvision_compatible=True, macs=11_308_466_176,
                reference=_REF.format("B") + _BN)
def vgg13_bn(num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG-13 with batch norm (Simonyan & Zisserman 2014, Table 1 config B): 133,053,736 parameters."""
    return _vgg("B", True, num_classes, dropout)


@register_model("vgg16", "vgg", torchvision_compatible=True, macs=15_470_264_320, reference=_REF.format("D"))
def vgg16(num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG-16 (Simonyan & Zisserman 2014, Table 1 config D): 138,357,544 parameters."""
    return _vgg("D", False, num_classes, dropout)


@register_model("vgg16_bn", "vgg", torchvision_compatible=True, macs=15_470_264_320,
                reference=_REF.format("D") + _BN)
def vgg16_bn(num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG-16 with batch norm (Simonyan & Zisserman 2014, Table 1 config D): 138,365,992 parameters."""
    return _vgg("D", True, num_classes, dropout)


@register_model("vgg19", "vgg", torchvision_compatible=True, macs=19_632_062_464, reference=_REF.format("E"))
def vgg19(num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG-19 (Simonyan & Zisserman 2014, Table 1 config E): 143,667,240 parameters."""
    return _vgg("E", False, num_classes, dropout)


@register_model("vgg19_bn", "vgg", torchvision_compatible=True, macs=19_632_062_464,
                reference=_REF.format("E") + _BN)
def vgg19_bn(num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG-19 with batch norm (Simonyan & Zisserman 2014, Table 1 config E): 143,678,248 parameters."""
    return _vgg("E", True, num_classes, dropout)


@register_model("vgg11_lrn", "vgg", macs=7_609_090_048, reference=_REF.format("A-LRN"))
def vgg11_lrn(num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG-11 with LRN after conv1 (Simonyan & Zisserman 2014, Table 1 config A-LRN): 132,863,336 parameters."""
    return _vgg("A-LRN", False, num_classes, dropout)


@register_model("vgg16_c", "vgg", macs=11_770_888_192, reference=_REF.format("C"))
def vgg16_c(num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG config C, 1x1 third convs in blocks 3-5 (Simonyan & Zisserman 2014, Table 1): 133,638,952 params."""
    return _vgg("C", False, num_classes, dropout)
