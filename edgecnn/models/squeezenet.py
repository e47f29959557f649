"""SqueezeNet 1.0 (Iandola et al. 2016) and 1.1 (the authors' revision), torchvision-compatible.

Fire module: a 1x1 "squeeze" conv, then parallel 1x1 and 3x3 "expand" convs concatenated (all with bias and
ReLU). The classifier is a 1x1 conv to the classes, ReLU and global average pooling (no fully connected
layer). 1.1 starts with a 3x3/2 conv of 64 maps and pools earlier: 2.4x fewer MACs, slightly fewer
parameters. Parameter counts (1000 classes): 1.0 1,248,424; 1.1 1,235,496.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgecnn.models.registry import register_model


class Fire(nn.Module):
    """Fire module (Iandola et al. 2016, Fig. 1): squeeze 1x1, expand 1x1 and 3x3, concatenated."""

    def __init__(self, inplanes: int, squeeze_planes: int, expand1x1_planes: int, expand3x3_planes: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


# ("conv", out, kernel, stride): conv + ReLU; "M": 3x3/2 max-pool (ceil); (squeeze, expand1x1, expand3x3): Fire.
CFGS: dict[str, list] = {
    # Iandola et al. 2016, Table 1
    "1_0": [("conv", 96, 7, 2), "M", (16, 64, 64), (16, 64, 64), (32, 128, 128), "M", (32, 128, 128),
            (48, 192, 192), (48, 192, 192), (64, 256, 256), "M", (64, 256, 256)],
    # SqueezeNet v1.1 (the authors' release): 3x3 stem, pooling after conv1, fire3 and fire5
    "1_1": [("conv", 64, 3, 2), "M", (16, 64, 64), (16, 64, 64), "M", (32, 128, 128), (32, 128, 128), "M",
            (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256)],
}


def make_features(cfg: list, in_channels: int = 3) -> nn.Sequential:
    """The ``features`` stack of a configuration (torchvision's layer order and indices)."""
    layers: list[nn.Module] = []
    for item in cfg:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True))
        elif item[0] == "conv":
            _, out, k, s = item
            layers += [nn.Conv2d(in_channels, out, kernel_size=k, stride=s), nn.ReLU(inplace=True)]
            in_channels = out
        else:
            layers.append(Fire(in_channels, *item))
            in_channels = item[1] + item[2]
    return nn.Sequential(*layers)


class SqueezeNet(nn.Module):
    """SqueezeNet with torchvision's module names (``features``, ``classifier``)."""

    def __init__(self, version: str = "1_0", num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = make_features(CFGS[version])
        final_conv = nn.Conv2d(512, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), final_conv, nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d((1, 1)))
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, mean=0.0, std=0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


_REF = "Iandola et al. 2016, SqueezeNet: AlexNet-level accuracy with 50x fewer parameters"


@register_model("squeezenet1_0", "squeezenet", group="mobile", torchvision_compatible=True, macs=818_924_576,
                reference=_REF + ", Table 1")
def squeezenet1_0(num_classes: int = 1000, dropout: float = 0.5) -> SqueezeNet:
    """SqueezeNet 1.0 (Iandola et al. 2016, Table 1): 1,248,424 parameters."""
    return SqueezeNet("1_0", num_classes, dropout)


@register_model("squeezenet1_1", "squeezenet", group="mobile", torchvision_compatible=True, macs=349_151_936,
                reference=_REF + " (v1.1 from the authors' repository)")
def squeezenet1_1(num_classes: int = 1000, dropout: float = 0.5) -> SqueezeNet:
    """SqueezeNet 1.1 (Iandola et al. 2016, the authors' v1.1 revision): 1,235,496 parameters."""
    return SqueezeNet("1_1", num_classes, dropout)
