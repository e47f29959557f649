"""AlexNet (Krizhevsky et al. 2012), torchvision's single-GPU variant, and ZFNet (Zeiler & Fergus 2013).

* ``alexnet``: torchvision-compatible (64/192/384/256/256 maps, adaptive 6x6 pool), 61,100,840 params.
* ``alexnet_paper``: Krizhevsky et al. 2012 (Fig. 2 on one GPU) — 227x227x3 input; CONV1 96 11x11/4 pad 0
  -> 55x55x96; POOL1 3x3/2 -> 27x27x96; NORM1; CONV2 256 5x5 pad 2 -> 27x27x256; POOL2 -> 13x13x256; NORM2;
  CONV3/4 384 3x3 pad 1, CONV5 256 3x3 pad 1 -> 13x13; POOL3 -> 6x6x256; FC6/FC7 4096, FC8 1000;
  dropout 0.5 before FC6 and FC7. Ungrouped (one GPU): 62,378,344 params.
* ``zfnet``: Zeiler & Fergus, Fig. 3 — 224x224x3 input; conv1 96 7x7/2 (pad 1) -> 110x110; pool 3x3/2
  -> 55x55; LRN; conv2 256 5x5/2 -> 26x26; pool 3x3/2 -> 13x13; LRN; conv3/4 384, conv5 256 3x3 pad 1
  -> 13x13; pool 3x3/2 -> 6x6x256; FC 4096, 4096, 1000. The paper's 110->55 and 26->13 poolings need
  ceil rounding (Caffe's), which pools 1 and 2 use. 62,357,608 params.

LRN follows the AlexNet paper: size 5, alpha 1e-4, beta 0.75, k 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from edgecnn.models.registry import register_model

# (out_channels, kernel, stride, padding) per conv; "M" max-pool 3x3/2, "Mc" the same with ceil rounding;
# "N" local response normalisation.
LayerCfg = Sequence[tuple[int, int, int, int] | str]

_LRN = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)

CFGS: dict[str, LayerCfg] = {
    "torchvision": [(64, 11, 4, 2), "M", (192, 5, 1, 2), "M", (384, 3, 1, 1), (256, 3, 1, 1),
                    (256, 3, 1, 1), "M"],
    "paper": [(96, 11, 4, 0), "M", "N", (256, 5, 1, 2), "M", "N", (384, 3, 1, 1), (384, 3, 1, 1),
              (256, 3, 1, 1), "M"],
    "zfnet": [(96, 7, 2, 1), "Mc", "N", (256, 5, 2, 0), "Mc", "N", (384, 3, 1, 1), (384, 3, 1, 1),
              (256, 3, 1, 1), "M"],
}


def make_features(cfg: LayerCfg, in_channels: int = 3) -> nn.Sequential:
    """Conv/ReLU, pooling and LRN layers from a configuration table."""
    layers: list[nn.Module] = []
    for item in cfg:
        if item == "M" or item == "Mc":
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=item == "Mc"))
        elif item == "N":
            layers.append(nn.LocalResponseNorm(**_LRN))
        else:
            out, k, s, p = item
            layers += [nn.Conv2d(in_channels, out, kernel_size=k, stride=s, padding=p), nn.ReLU(inplace=True)]
            in_channels = out
    return nn.Sequential(*layers)


class AlexNet(nn.Module):
    """AlexNet-style network: ``features`` from a table, ``avgpool`` to 6x6, 3-layer ``classifier``.

    Module names and order are torchvision's, so torchvision's ``alexnet`` state dict loads strictly.
    """

    def __init__(self, cfg: LayerCfg = CFGS["torchvision"], num_classes: int = 1000, dropout: float = 0.5,
                 adaptive_pool: bool = True) -> None:
        super().__init__()
        self.features = make_features(cfg)
        last = [c for c in cfg if isinstance(c, tuple)][-1][0]
        # torchvision pools adaptively to 6x6; the paper models reach 6x6 by arithmetic and keep the
        # graph free of the (then no-op) adaptive pool.
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6)) if adaptive_pool else nn.Identity()
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(last * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(p=dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register_model("alexnet", "alexnet", torchvision_compatible=True, macs=714_188_480,
                reference="Krizhevsky 2014, One weird trick (torchvision variant of Krizhevsky et al. 2012)")
def alexnet(num_classes: int = 1000, dropout: float = 0.5) -> AlexNet:
    """AlexNet, torchvision's one-GPU variant (Krizhevsky 2014, One weird trick): 61,100,840 parameters."""
    return AlexNet(CFGS["torchvision"], num_classes, dropout)


@register_model("alexnet_paper", "alexnet", input_size=(227, 227), macs=1_135_256_096,
                reference="Krizhevsky et al. 2012, ImageNet Classification with Deep CNNs, Fig. 2 (one GPU)")
def alexnet_paper(num_classes: int = 1000, dropout: float = 0.5) -> AlexNet:
    """AlexNet, 227x227 input, 96 maps, LRN, ungrouped (Krizhevsky et al. 2012, Fig. 2): 62,378,344 parameters."""
    return AlexNet(CFGS["paper"], num_classes, dropout, adaptive_pool=False)


@register_model("zfnet", "zfnet", macs=1_168_032_896,
                reference="Zeiler & Fergus 2013, Visualizing and Understanding Convolutional Networks, Fig. 3")
def zfnet(num_classes: int = 1000, dropout: float = 0.5) -> AlexNet:
    """ZFNet, 7x7/2 conv1 and stride-2 conv2 (Zeiler & Fergus 2013, Fig. 3): 62,357,608 parameters."""
    return AlexNet(CFGS["zfnet"], num_classes, dropout, adaptive_pool=False)
