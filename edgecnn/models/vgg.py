"""VGG (Simonyan & Zisserman 2014), configurations A, A-LRN, B, C, D, E of Table 1 (seed 004).

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


_REF = "Simonyan & Zisserman 2014, Very Deep Convolutional Networks, Table 1 config {}"


def _register(name: str, cfg: str, batch_norm: bool, torchvision: bool) -> None:
    def builder(num_classes: int = 1000, dropout: float = 0.5) -> VGG:
        return VGG(make_layers(CFGS[cfg], batch_norm), num_classes, dropout)

    builder.__name__ = name
    builder.__doc__ = f"VGG configuration {cfg}{' with batch norm' if batch_norm else ''}."
    suffix = " + batch norm" if batch_norm else ""
    register_model(name, "vgg", torchvision_compatible=torchvision, reference=_REF.format(cfg) + suffix)(builder)


for _name, _cfg in [("vgg11", "A"), ("vgg13", "B"), ("vgg16", "D"), ("vgg19", "E")]:
    _register(_name, _cfg, False, True)
    _register(_name + "_bn", _cfg, True, True)
_register("vgg11_lrn", "A-LRN", False, False)
_register("vgg16_c", "C", False, False)
