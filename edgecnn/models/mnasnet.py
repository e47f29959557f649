"""MnasNet (Tan et al. 2019), depth multipliers 0.5 and 1.0, torchvision-compatible (its B1 variant: no SE).

A 3x3/2 stem, a depthwise-separable block without residual, six stacks of inverted residuals (ReLU, every
conv and norm a direct child: ``layers.{stack}.{block}.layers.{i}``), a 1x1 conv to 1280 maps, global mean
and a linear classifier. Batch norm momentum 0.0003 (the paper's TensorFlow decay 0.9997) and eps 1e-5.
Widths scale with ``alpha`` rounded to multiples of 8, rounding up unless that overshoots by 10% or more.
Parameter counts (1000 classes): mnasnet0_5 2,218,512; mnasnet1_0 4,383,312.
"""

from __future__ import annotations

from functools import partial

from torch import Tensor, nn

from edgecnn.models.blocks import InvertedResidual, InvertedResidualConfig
from edgecnn.models.registry import register_model

BN_MOMENTUM = 1 - 0.9997

#: widths at alpha 1: stem, separable block, then the six stacks
DEPTHS = [32, 16, 24, 40, 80, 96, 192, 320]
#: the six stacks of inverted residuals: (kernel, first stride, expansion, repeats)
STACKS = [(3, 2, 3, 3), (5, 2, 3, 3), (5, 2, 6, 3), (3, 1, 6, 2), (5, 2, 6, 4), (3, 1, 6, 1)]


def scale_depth(value: float, divisor: int = 8, round_up_bias: float = 0.9) -> int:
    """Round to a multiple of ``divisor``, up unless the nearest multiple is within ``round_up_bias`` of it."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded if rounded >= round_up_bias * value else rounded + divisor


def mnasnet_config(alpha: float) -> tuple[list[int], list[list[InvertedResidualConfig]]]:
    """Scaled widths and the blocks of each stack."""
    depths = [scale_depth(d * alpha) for d in DEPTHS]
    stacks, cin = [], depths[1]
    for (kernel, stride, expansion, repeats), cout in zip(STACKS, depths[2:], strict=True):
        stacks.append([InvertedResidualConfig(cin if i == 0 else cout, kernel, (cin if i == 0 else cout) * expansion,
                                              cout, stride if i == 0 else 1, "relu") for i in range(repeats)])
        cin = cout
    return depths, stacks


class MNASNet(nn.Module):
    """MnasNet with torchvision's module names (``layers``, ``classifier``)."""

    def __init__(self, alpha: float, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        if alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        depths, stacks = mnasnet_config(alpha)
        bn = partial(nn.BatchNorm2d, momentum=BN_MOMENTUM)
        d0, d1 = depths[0], depths[1]
        self.layers = nn.Sequential(
            nn.Conv2d(3, d0, 3, padding=1, stride=2, bias=False), bn(d0), nn.ReLU(inplace=True),
            nn.Conv2d(d0, d0, 3, padding=1, stride=1, groups=d0, bias=False), bn(d0), nn.ReLU(inplace=True),
            nn.Conv2d(d0, d1, 1, bias=False), bn(d1),
            *(nn.Sequential(*(InvertedResidual(c, bn, layout="flat") for c in stack)) for stack in stacks),
            nn.Conv2d(depths[-1], 1280, 1, bias=False), bn(1280), nn.ReLU(inplace=True),
        )
        self.classifier = nn.Sequential(nn.Dropout(p=dropout, inplace=True), nn.Linear(1280, num_classes))
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, mode="fan_out", nonlinearity="sigmoid")
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.layers(x).mean([2, 3]))


_REF = "Tan et al. 2019, MnasNet: Platform-Aware Neural Architecture Search for Mobile (B1 variant, no SE)"


@register_model("mnasnet0_5", "mnasnet", group="mobile", torchvision_compatible=True, macs=104_455_968, reference=_REF)
def mnasnet0_5(num_classes: int = 1000, dropout: float = 0.2) -> MNASNet:
    """MnasNet-B1 with depth multiplier 0.5 (Tan et al. 2019): 2,218,512 parameters."""
    return MNASNet(0.5, num_classes, dropout)


@register_model("mnasnet1_0", "mnasnet", group="mobile", torchvision_compatible=True, macs=314_415_872, reference=_REF)
def mnasnet1_0(num_classes: int = 1000, dropout: float = 0.2) -> MNASNet:
    """MnasNet-B1 with depth multiplier 1.0 (Tan et al. 2019): 4,383,312 parameters."""
    return MNASNet(1.0, num_classes, dropout)
