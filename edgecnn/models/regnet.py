"""RegNetY-400MF (Radosavovic et al. 2020), torchvision-compatible.

Stem 3x3/2 to 32 maps, four stages of residual bottleneck blocks (1x1, 3x3 grouped conv with the stage's
group width and the stride, SE squeezing to a quarter of the block's input width, 1x1; a 1x1 projection
shortcut when the shape changes), global average pool, linear classifier. ReLU, default batch norm.
4,344,144 parameters (1000 classes).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from torch import Tensor, nn

from edgecnn.models.blocks import ConvBNAct, SqueezeExcitation
from edgecnn.models.registry import register_model


@dataclass(frozen=True)
class RegNetConfig:
    """Per-stage widths, depths and group widths of one RegNet (all stages stride 2)."""

    depths: tuple[int, ...]
    widths: tuple[int, ...]
    group_widths: tuple[int, ...]
    bottleneck_multiplier: float = 1.0
    se_ratio: float | None = None
    stem_width: int = 32


#: RegNetY-400MF: what torchvision's ``BlockParams.from_init_params(depth=16, w_0=48, w_a=27.89, w_m=2.09,
#: group_width=8, se_ratio=0.25)`` expands to (quantised to multiples of 8, groups made compatible).
REGNET_Y_400MF = RegNetConfig(depths=(1, 3, 6, 6), widths=(48, 104, 208, 440), group_widths=(8, 8, 8, 8),
                              se_ratio=0.25)


class BottleneckTransform(nn.Sequential):
    """1x1 (``a``), 3x3 grouped with the stride (``b``), optional SE (``se``), 1x1 without activation (``c``)."""

    def __init__(self, width_in: int, width_out: int, stride: int, group_width: int, bottleneck_multiplier: float,
                 se_ratio: float | None) -> None:
        w_b = int(round(width_out * bottleneck_multiplier))
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["a"] = ConvBNAct(width_in, w_b, 1)
        layers["b"] = ConvBNAct(w_b, w_b, 3, stride, groups=w_b // group_width)
        if se_ratio:
            layers["se"] = SqueezeExcitation(w_b, int(round(se_ratio * width_in)), activation="relu")
        layers["c"] = ConvBNAct(w_b, width_out, 1, activation=None)
        super().__init__(layers)


class ResBottleneckBlock(nn.Module):
    """``relu(proj(x) + f(x))``; ``proj`` is a 1x1 conv + BN when the width or resolution changes."""

    def __init__(self, width_in: int, width_out: int, stride: int, group_width: int, bottleneck_multiplier: float,
                 se_ratio: float | None) -> None:
        super().__init__()
        self.proj = (ConvBNAct(width_in, width_out, 1, stride, activation=None)
                     if width_in != width_out or stride != 1 else None)
        self.f = BottleneckTransform(width_in, width_out, stride, group_width, bottleneck_multiplier, se_ratio)
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.proj is None else self.proj(x)
        return self.activation(shortcut + self.f(x))


class RegNet(nn.Module):
    """RegNet with torchvision's module names (``stem``, ``trunk_output.block{i}.block{i}-{j}``, ``fc``)."""

    def __init__(self, cfg: RegNetConfig, num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, cfg.stem_width, 3, stride=2)
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        width = cfg.stem_width
        for i, (depth, w, g) in enumerate(zip(cfg.depths, cfg.widths, cfg.group_widths, strict=True), start=1):
            blocks = OrderedDict((f"block{i}-{j}", ResBottleneckBlock(width if j == 0 else w, w, 2 if j == 0 else 1,
                                                                      g, cfg.bottleneck_multiplier, cfg.se_ratio))
                                 for j in range(depth))
            stages[f"block{i}"] = nn.Sequential(blocks)
            width = w
        self.trunk_output = nn.Sequential(stages)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, mean=0.0, std=math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, mean=0.0, std=0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.trunk_output(self.stem(x)))
        return self.fc(x.flatten(start_dim=1))


@register_model("regnet_y_400mf", "regnet", group="mobile", torchvision_compatible=True, macs=401_842_848,
                reference="Radosavovic et al. 2020, Designing Network Design Spaces (RegNetY-400MF)")
def regnet_y_400mf(num_classes: int = 1000) -> RegNet:
    """RegNetY-400MF (Radosavovic et al. 2020): 4,344,144 parameters."""
    return RegNet(REGNET_Y_400MF, num_classes)
