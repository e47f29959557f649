"""MobileNetV2 (Sandler et al. 2018) and MobileNetV3 (Howard et al. 2019), torchvision-compatible.

Both stack :class:`~edgecnn.models.blocks.InvertedResidual` blocks from a table. V2: ReLU6, no SE, the
projection's conv and norm are direct children (``features.{i}.conv.{j}``), default batch norm. V3: ReLU or
hard-swish per block, SE with a hard-sigmoid gate squeezing to ``make_divisible(expanded / 4)``, batch norm
eps 1e-3 and momentum 0.01, a hard-swish head with a Linear-Hardswish-Dropout-Linear classifier.
Parameter counts (1000 classes): mobilenet_v2 3,504,872; mobilenet_v3_large 5,483,032;
mobilenet_v3_small 2,542,856.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from edgecnn.models.blocks import (
    ConvBNAct,
    InvertedResidual,
    InvertedResidualConfig,
    SqueezeExcitation,
    init_weights,
    make_divisible,
)
from edgecnn.models.registry import register_model

# ------------------------------------------------------------------ MobileNetV2

#: Sandler et al. 2018, Table 2: (expansion t, output channels c, repeats n, first stride s)
V2_SETTING: list[tuple[int, int, int, int]] = [
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
]


def mobilenet_v2_config(width_mult: float = 1.0, stem: int = 32) -> list[InvertedResidualConfig]:
    """The 17 blocks of MobileNetV2 from Table 2 (channels rounded to multiples of 8)."""
    cfgs, cin = [], make_divisible(stem * width_mult)
    for t, c, n, s in V2_SETTING:
        cout = make_divisible(c * width_mult)
        for i in range(n):
            cfgs.append(InvertedResidualConfig(cin, 3, int(round(cin * t)), cout, s if i == 0 else 1, "relu6"))
            cin = cout
    return cfgs


class MobileNetV2(nn.Module):
    """MobileNetV2 with torchvision's module names (``features``, ``classifier``)."""

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2) -> None:
        super().__init__()
        cfgs = mobilenet_v2_config(width_mult)
        last = make_divisible(1280 * max(1.0, width_mult))
        self.features = nn.Sequential(
            ConvBNAct(3, cfgs[0].input_channels, 3, stride=2, activation="relu6"),
            *(InvertedResidual(c, layout="flat_projection") for c in cfgs),
            ConvBNAct(cfgs[-1].out_channels, last, 1, activation="relu6"),
        )
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(last, num_classes))
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


@register_model("mobilenet_v2", "mobilenet", group="mobile", torchvision_compatible=True, macs=300_774_272,
                reference="Sandler et al. 2018, MobileNetV2: Inverted Residuals and Linear Bottlenecks, Table 2")
def mobilenet_v2(num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2) -> MobileNetV2:
    """MobileNetV2 1.0 (Sandler et al. 2018, Table 2): 3,504,872 parameters."""
    return MobileNetV2(num_classes, width_mult, dropout)


# ------------------------------------------------------------------ MobileNetV3


def _bneck(cin: int, kernel: int, expanded: int, cout: int, se: bool, act: str, stride: int) -> InvertedResidualConfig:
    """One row of Howard et al.'s Tables 1/2: input, kernel, exp size, #out, SE, NL (RE/HS), stride."""
    return InvertedResidualConfig(cin, kernel, expanded, cout, stride, "hardswish" if act == "HS" else "relu",
                                  make_divisible(expanded // 4) if se else 0)


#: Howard et al. 2019, Table 1 (Large) and Table 2 (Small); then the last 1x1 conv (6x the last width) and the
#: classifier's hidden width.
V3_SETTINGS: dict[str, tuple[list[InvertedResidualConfig], int]] = {
    "large": ([
        _bneck(16, 3, 16, 16, False, "RE", 1),
        _bneck(16, 3, 64, 24, False, "RE", 2),
        _bneck(24, 3, 72, 24, False, "RE", 1),
        _bneck(24, 5, 72, 40, True, "RE", 2),
        _bneck(40, 5, 120, 40, True, "RE", 1),
        _bneck(40, 5, 120, 40, True, "RE", 1),
        _bneck(40, 3, 240, 80, False, "HS", 2),
        _bneck(80, 3, 200, 80, False, "HS", 1),
        _bneck(80, 3, 184, 80, False, "HS", 1),
        _bneck(80, 3, 184, 80, False, "HS", 1),
        _bneck(80, 3, 480, 112, True, "HS", 1),
        _bneck(112, 3, 672, 112, True, "HS", 1),
        _bneck(112, 5, 672, 160, True, "HS", 2),
        _bneck(160, 5, 960, 160, True, "HS", 1),
        _bneck(160, 5, 960, 160, True, "HS", 1),
    ], 1280),
    "small": ([
        _bneck(16, 3, 16, 16, True, "RE", 2),
        _bneck(16, 3, 72, 24, False, "RE", 2),
        _bneck(24, 3, 88, 24, False, "RE", 1),
        _bneck(24, 5, 96, 40, True, "HS", 2),
        _bneck(40, 5, 240, 40, True, "HS", 1),
        _bneck(40, 5, 240, 40, True, "HS", 1),
        _bneck(40, 5, 120, 48, True, "HS", 1),
        _bneck(48, 5, 144, 48, True, "HS", 1),
        _bneck(48, 5, 288, 96, True, "HS", 2),
        _bneck(96, 5, 576, 96, True, "HS", 1),
        _bneck(96, 5, 576, 96, True, "HS", 1),
    ], 1024),
}


class MobileNetV3(nn.Module):
    """MobileNetV3 with torchvision's module names (``features``, ``avgpool``, ``classifier``)."""

    def __init__(self, setting: list[InvertedResidualConfig], last_channel: int, num_classes: int = 1000,
                 dropout: float = 0.2) -> None:
        super().__init__()
        norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
        se = partial(SqueezeExcitation, activation="relu", gate="hardsigmoid")
        head = 6 * setting[-1].out_channels
        self.features = nn.Sequential(
            ConvBNAct(3, setting[0].input_channels, 3, stride=2, activation="hardswish", norm_layer=norm),
            *(InvertedResidual(c, norm, layout="nested", se_layer=se) for c in setting),
            ConvBNAct(setting[-1].out_channels, head, 1, activation="hardswish", norm_layer=norm),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(head, last_channel), nn.Hardswish(inplace=True), nn.Dropout(p=dropout, inplace=True),
            nn.Linear(last_channel, num_classes),
        )
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


_V3_REF = "Howard et al. 2019, Searching for MobileNetV3, Table {}"


@register_model("mobilenet_v3_large", "mobilenet", group="mobile", torchvision_compatible=True, macs=216_589_760,
                reference=_V3_REF.format(1))
def mobilenet_v3_large(num_classes: int = 1000, dropout: float = 0.2) -> MobileNetV3:
    """MobileNetV3-Large (Howard et al. 2019, Table 1): 5,483,032 parameters."""
    return MobileNetV3(*V3_SETTINGS["large"], num_classes=num_classes, dropout=dropout)


@register_model("mobilenet_v3_small", "mobilenet", group="mobile", torchvision_compatible=True, macs=56_510_400,
                reference=_V3_REF.format(2))
def mobilenet_v3_small(num_classes: int = 1000, dropout: float = 0.2) -> MobileNetV3:
    """MobileNetV3-Small (Howard et al. 2019, Table 2): 2,542,856 parameters."""
    return MobileNetV3(*V3_SETTINGS["small"], num_classes=num_classes, dropout=dropout)
