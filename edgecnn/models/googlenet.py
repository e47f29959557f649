"""GoogLeNet / Inception v1 (Szegedy et al. 2014), torchvision-compatible, with the auxiliary classifiers.

Module names, shapes and outputs follow torchvision: conv layers carry batch norm (``BasicConv2d``), the
auxiliary heads ``aux1`` (after 4a) and ``aux2`` (after 4d) exist unless ``aux_logits=False``, training
mode returns ``(logits, aux2, aux1)`` and eval mode only the logits. 6,624,904 parameters without the
aux heads, 13,004,888 with them.

Note on the "5x5" branch: torchvision (and its ImageNet checkpoint) use a 3x3 kernel there; ``googlenet``
keeps it for checkpoint compatibility. :class:`Inception` takes ``ch5x5_kernel=5`` for the paper's
module, and ``naive=True`` for the naive module of the paper's Fig. 2(a) (1x1, 3x3, 5x5 convs and 3x3
max-pool on the input, no reductions).
"""

from __future__ import annotations

from collections import namedtuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgecnn.models.registry import register_model

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])

# name: (in, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj) — Table 1 of the paper.
INCEPTION_CFG: dict[str, tuple[int, ...]] = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}


class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm (eps 1e-3) + ReLU, as in torchvision."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """The Inception module: four parallel branches concatenated along channels.

    With ``naive=True`` the 3x3 and 5x5 branches have no 1x1 reduction and the pooling branch no
    projection (the "naive version" of Szegedy et al. 2014, Fig. 2a); ``ch3x3red``/``ch5x5red``/``pool_proj`` are then
    ignored. ``plain_conv=True`` uses bare convolutions (bias + ReLU, no batch norm) as in the paper.
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int, ch5x5_kernel: int = 3, naive: bool = False, plain_conv: bool = False) -> None:
        super().__init__()
        conv = _plain_conv if plain_conv else BasicConv2d
        k5 = ch5x5_kernel
        self.naive = naive
        self.branch1 = conv(in_channels, ch1x1, kernel_size=1)
        if naive:
            self.branch2 = conv(in_channels, ch3x3, kernel_size=3, padding=1)
            self.branch3 = conv(in_channels, ch5x5, kernel_size=k5, padding=k5 // 2)
            self.branch4 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True)
        else:
            self.branch2 = nn.Sequential(conv(in_channels, ch3x3red, kernel_size=1),
                                         conv(ch3x3red, ch3x3, kernel_size=3, padding=1))
            self.branch3 = nn.Sequential(conv(in_channels, ch5x5red, kernel_size=1),
                                         conv(ch5x5red, ch5x5, kernel_size=k5, padding=k5 // 2))
            self.branch4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                                         conv(in_channels, pool_proj, kernel_size=1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


def _plain_conv(in_channels: int, out_channels: int, **kwargs) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, **kwargs), nn.ReLU(inplace=True))


class InceptionAux(nn.Module):
    """Auxiliary classifier: 4x4 average pool, 1x1 conv to 128, FC 1024, dropout, FC to classes."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))
        x = self.dropout(F.relu(self.fc1(torch.flatten(x, 1)), inplace=True))
        return self.fc2(x)


class GoogLeNet(nn.Module):
    """GoogLeNet with torchvision's module names; auxiliary heads only used in training mode."""

    def __init__(self, num_classes: int = 1000, aux_logits: bool = True, transform_input: bool = False,
                 init_weights: bool = True, dropout: float = 0.2, dropout_aux: float = 0.7) -> None:
        super().__init__()
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(*INCEPTION_CFG["inception3a"])
        self.inception3b = Inception(*INCEPTION_CFG["inception3b"])
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        for name in ("inception4a", "inception4b", "inception4c", "inception4d", "inception4e"):
            setattr(self, name, Inception(*INCEPTION_CFG[name]))
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception(*INCEPTION_CFG["inception5a"])
        self.inception5b = Inception(*INCEPTION_CFG["inception5b"])
        self.aux1 = InceptionAux(512, num_classes, dropout_aux) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes, dropout_aux) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)
        if init_weights:
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    def _transform_input(self, x: Tensor) -> Tensor:
        if not self.transform_input:
            return x
        x_ch0 = torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
        x_ch1 = torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
        x_ch2 = torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
        return torch.cat((x_ch0, x_ch1, x_ch2), 1)

    def forward(self, x: Tensor) -> Tensor | GoogLeNetOutputs:
        x = self._transform_input(x)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.avgpool(self.inception5b(self.inception5a(x)))
        x = self.fc(self.dropout(torch.flatten(x, 1)))
        if self.training and self.aux_logits:
            return GoogLeNetOutputs(x, aux2, aux1)
        return x


@register_model("googlenet", "googlenet", torchvision_compatible=True, macs=1_498_376_192,
                reference="Szegedy et al. 2014, Going Deeper with Convolutions (torchvision layout)",
                notes="aux heads aux1/aux2 in training mode only; aux_logits=False drops them",
                train_only=("aux1", "aux2"))
def googlenet(num_classes: int = 1000, aux_logits: bool = True, transform_input: bool = False,
              dropout: float = 0.2, dropout_aux: float = 0.7) -> GoogLeNet:
    """GoogLeNet (Szegedy et al. 2014, Table 1): 6,624,904 parameters, 13,004,888 with the training-only aux heads."""
    return GoogLeNet(num_classes, aux_logits, transform_input, dropout=dropout, dropout_aux=dropout_aux)
