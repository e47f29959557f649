"""ShuffleNetV2 (Ma et al. 2018), x0.5 and x1.0, torchvision-compatible.

A unit splits its channels in two (stride 1) or feeds both branches the whole input (stride 2, with a
depthwise-separable ``branch1``), runs 1x1 - 3x3 depthwise - 1x1 on ``branch2``, concatenates, and
shuffles channels between the two halves (reshape to (N, 2, C/2, H, W), swap the group axes, reshape
back). Batch norm everywhere, no bias. Random initialisation is He-normal (as the other mobile families):
torchvision keeps PyTorch's defaults, under which a random model's logits barely depend on its input.
Parameter counts (1000 classes): x0.5 1,366,792; x1.0 2,278,604.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgecnn.models.blocks import init_weights
from edgecnn.models.registry import register_model


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave the channels of ``groups`` groups (Zhang et al. 2018, Fig. 1): exported as Reshape-Transpose-
    Reshape with the batch left dynamic."""
    n, c, h, w = x.shape
    x = x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous()
    return x.view(n, c, h, w)


def _depthwise(channels: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit (Ma et al. 2018, Fig. 3c for stride 1, Fig. 3d for stride 2)."""

    def __init__(self, inp: int, oup: int, stride: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        branch = oup // 2
        if stride == 1 and inp != 2 * branch:
            raise ValueError(f"a stride-1 unit needs inp == oup (got {inp} -> {oup})")
        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(
                _depthwise(inp, stride), nn.BatchNorm2d(inp),
                nn.Conv2d(inp, branch, 1, bias=False), nn.BatchNorm2d(branch), nn.ReLU(inplace=True),
            )
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else branch, branch, 1, bias=False), nn.BatchNorm2d(branch),
            nn.ReLU(inplace=True),
            _depthwise(branch, stride), nn.BatchNorm2d(branch),
            nn.Conv2d(branch, branch, 1, bias=False), nn.BatchNorm2d(branch), nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = [x1, self.branch2(x2)]
        else:
            out = [self.branch1(x), self.branch2(x)]
        return channel_shuffle(torch.cat(out, 1), 2)


#: Ma et al. 2018, Table 5: units per stage (stages 2-4) and output channels (conv1, stages 2-4, conv5)
REPEATS = [4, 8, 4]
WIDTHS: dict[str, list[int]] = {
    "x0_5": [24, 48, 96, 192, 1024],
    "x1_0": [24, 116, 232, 464, 1024],
}


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2 with torchvision's module names (``conv1``, ``maxpool``, ``stage2..4``, ``conv5``, ``fc``)."""

    def __init__(self, widths: list[int], repeats: list[int] = REPEATS, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                   nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        cin = widths[0]
        for i, (n, cout) in enumerate(zip(repeats, widths[1:-1], strict=True), start=2):
            setattr(self, f"stage{i}", nn.Sequential(ShuffleUnit(cin, cout, 2),
                                                     *(ShuffleUnit(cout, cout, 1) for _ in range(n - 1))))
            cin = cout
        self.conv5 = nn.Sequential(nn.Conv2d(cin, widths[-1], 1, bias=False), nn.BatchNorm2d(widths[-1]),
                                   nn.ReLU(inplace=True))
        self.fc = nn.Linear(widths[-1], num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.conv5(self.stage4(self.stage3(self.stage2(x))))
        return self.fc(x.mean([2, 3]))


_REF = "Ma et al. 2018, ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design, Table 5"


@register_model("shufflenet_v2_x0_5", "shufflenet", group="mobile", torchvision_compatible=True, macs=40_476_448,
                reference=_REF)
def shufflenet_v2_x0_5(num_classes: int = 1000) -> ShuffleNetV2:
    """ShuffleNetV2 0.5x (Ma et al. 2018, Table 5): 1,366,792 parameters."""
    return ShuffleNetV2(WIDTHS["x0_5"], num_classes=num_classes)


@register_model("shufflenet_v2_x1_0", "shufflenet", group="mobile", torchvision_compatible=True, macs=144_907_992,
                reference=_REF)
def shufflenet_v2_x1_0(num_classes: int = 1000) -> ShuffleNetV2:
    """ShuffleNetV2 1.0x (Ma et al. 2018, Table 5): 2,278,604 parameters."""
    return ShuffleNetV2(WIDTHS["x1_0"], num_classes=num_classes)
