"""ResNet (He et al. 2015), torchvision-compatible: 18/34 with basic blocks, 50/101/152 with bottlenecks.

Parameter counts (1000 classes): 18: 11,689,512; 34: 21,797,672; 50: 25,557,032; 101: 44,549,160;
152: 60,192,808 (He et al. 2015, Table 1 gives the stage layouts).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgecnn.models.registry import register_model


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (stride here, as torchvision's v1.5), 1x1 expand by 4."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet with torchvision's module names (conv1, bn1, layer1..4, fc)."""

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: list[int], num_classes: int = 1000,
                 zero_init_residual: bool = False) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                last_bn = m.bn3 if isinstance(m, Bottleneck) else m.bn2 if isinstance(m, BasicBlock) else None
                if last_bn is not None:
                    nn.init.zeros_(last_bn.weight)

    def _make_layer(self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int,
                    stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _resnet(block: type[BasicBlock | Bottleneck], layers: list[int], num_classes: int,
            zero_init_residual: bool) -> ResNet:
    return ResNet(block, layers, num_classes, zero_init_residual)


_REF = "He et al. 2015, Deep Residual Learning for Image Recognition, Table 1"


@register_model("resnet18", "resnet", torchvision_compatible=True, macs=1_814_073_344, reference=_REF)
def resnet18(num_classes: int = 1000, zero_init_residual: bool = False) -> ResNet:
    """ResNet-18, basic blocks 2-2-2-2 (He et al. 2015, Table 1): 11,689,512 parameters."""
    return _resnet(BasicBlock, [2, 2, 2, 2], num_classes, zero_init_residual)


@register_model("resnet34", "resnet", torchvision_compatible=True, macs=3_663_761_408, reference=_REF)
def resnet34(num_classes: int = 1000, zero_init_residual: bool = False) -> ResNet:
    """ResNet-34, basic blocks 3-4-6-3 (He et al. 2015, Table 1): 21,797,672 parameters."""
    return _resnet(BasicBlock, [3, 4, 6, 3], num_classes, zero_init_residual)


@register_model("resnet50", "resnet", torchvision_compatible=True, macs=4_089_184_256, reference=_REF)
def resnet50(num_classes: int = 1000, zero_init_residual: bool = False) -> ResNet:
    """ResNet-50, bottlenecks 3-4-6-3 (He et al. 2015, Table 1): 25,557,032 parameters."""
    return _resnet(Bottleneck, [3, 4, 6, 3], num_classes, zero_init_residual)


@register_model("resnet101", "resnet", torchvision_compatible=True, macs=7_801_405_440, reference=_REF)
def resnet101(num_classes: int = 1000, zero_init_residual: bool = False) -> ResNet:
    """ResNet-101, bottlenecks 3-4-23-3 (He et al. 2015, Table 1): 44,549,160 parameters."""
    return _resnet(Bottleneck, [3, 4, 23, 3], num_classes, zero_init_residual)


@register_model("resnet152", "resnet", torchvision_compatible=True, macs=11_513_626_624, reference=_REF)
def resnet152(num_classes: int = 1000, zero_init_residual: bool = False) -> ResNet:
    """ResNet-152, bottlenecks 3-8-36-3 (He et al. 2015, Table 1): 60,192,808 parameters."""
    return _resnet(Bottleneck, [3, 8, 36, 3], num_classes, zero_init_residual)
