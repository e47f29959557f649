"""EfficientNet-B0 (Tan & Le 2019), torchvision-compatible.

Seven stages of MBConv blocks (:class:`~edgecnn.models.blocks.InvertedResidual`: SiLU, SE squeezing to a
quarter of the block's *input* channels with a sigmoid gate), default batch norm, a 1x1 head to 1280 maps.
Stochastic depth (Huang et al. 2016) drops residual branches in training with a probability rising
linearly to 0.2 over the 16 blocks; at inference (and so in every export) it is the identity.
5,288,548 parameters (1000 classes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


@dataclass(frozen=True)
class MBConvStage:
    """One row of Tan & Le 2019, Table 1: expansion, kernel, first stride, in/out channels, layers."""

    expand_ratio: int
    kernel: int
    stride: int
    input_channels: int
    out_channels: int
    num_layers: int

    def blocks(self, width_mult: float = 1.0, depth_mult: float = 1.0) -> list[InvertedResidualConfig]:
        """The stage's blocks (channels rounded to multiples of 8, depth rounded up)."""
        cin, cout = make_divisible(self.input_channels * width_mult), make_divisible(self.out_channels * width_mult)
        out = []
        for i in range(int(math.ceil(self.num_layers * depth_mult))):
            c = cin if i == 0 else cout
            out.append(InvertedResidualConfig(c, self.kernel, make_divisible(c * self.expand_ratio), cout,
                                              self.stride if i == 0 else 1, "silu", max(1, c // 4)))
        return out


#: Tan & Le 2019, Table 1 (EfficientNet-B0 baseline network)
B0_STAGES: list[MBConvStage] = [
    MBConvStage(1, 3, 1, 32, 16, 1),
    MBConvStage(6, 3, 2, 16, 24, 2),
    MBConvStage(6, 5, 2, 24, 40, 2),
    MBConvStage(6, 3, 2, 40, 80, 3),
    MBConvStage(6, 5, 1, 80, 112, 3),
    MBConvStage(6, 5, 2, 112, 192, 4),
    MBConvStage(6, 3, 1, 192, 320, 1),
]


class EfficientNet(nn.Module):
    """EfficientNet with torchvision's module names (``features.{stage}.{block}``, ``avgpool``, ``classifier``)."""

    def __init__(self, stages: list[MBConvStage], num_classes: int = 1000, dropout: float = 0.2,
                 stochastic_depth_prob: float = 0.2, width_mult: float = 1.0, depth_mult: float = 1.0) -> None:
        super().__init__()
        per_stage = [s.blocks(width_mult, depth_mult) for s in stages]
        total = sum(len(b) for b in per_stage)
        layers: list[nn.Module] = [ConvBNAct(3, per_stage[0][0].input_channels, 3, stride=2, activation="silu")]
        index = 0
        for blocks in per_stage:
            stage = []
            for cfg in blocks:
                stage.append(InvertedResidual(cfg, layout="nested", se_layer=_se,
                                              stochastic_depth=stochastic_depth_prob * index / total))
                index += 1
            layers.append(nn.Sequential(*stage))
        last_in = per_stage[-1][-1].out_channels
        layers.append(ConvBNAct(last_in, 4 * last_in, 1, activation="silu"))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout, inplace=True), nn.Linear(4 * last_in, num_classes))
        init_weights(self, linear_std=None)
        for m in self.modules():
            if isinstance(m, nn.Linear):  # uniform(+-1/sqrt(out)), torchvision's choice for EfficientNet
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _se(channels: int, squeeze: int) -> SqueezeExcitation:
    return SqueezeExcitation(channels, squeeze, activation="silu", gate="sigmoid")


@register_model("efficientnet_b0", "efficientnet", group="mobile", torchvision_compatible=True, macs=385_814_752,
                reference="Tan & Le 2019, EfficientNet: Rethinking Model Scaling for CNNs, Table 1",
                notes="stochastic depth 0.2 in training only (identity in exports)")
def efficientnet_b0(num_classes: int = 1000, dropout: float = 0.2, stochastic_depth_prob: float = 0.2) -> EfficientNet:
    """EfficientNet-B0 (Tan & Le 2019, Table 1): 5,288,548 parameters."""
    return EfficientNet(B0_STAGES, num_classes, dropout, stochastic_depth_prob)
