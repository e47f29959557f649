"""Building blocks shared by the mobile families, written once.

* :class:`ConvBNAct`: conv (no bias) + batch norm + optional activation, as torchvision's
  ``Conv2dNormActivation`` (children ``0``, ``1``, ``2``, so state-dict keys match).
* :class:`SqueezeExcitation`: Hu et al. 2018, Fig. 1 — global average pool, 1x1 reduce, activation,
  1x1 expand, gate (sigmoid or hard sigmoid), broadcast multiply.
* :class:`InvertedResidual` with its :class:`InvertedResidualConfig`: Sandler et al. 2018's block
  (1x1 expand, kxk depthwise, optional SE, linear 1x1 projection, residual when shapes allow), used by
  MobileNetV2/V3, EfficientNet and MnasNet with their own activations, SE and module layouts.
* :class:`StochasticDepth`: Huang et al. 2016 (per sample, "row" mode); identity at inference.
* :func:`make_divisible`: the channel rounding of the MobileNet reference code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

Activation = Literal["relu", "relu6", "hardswish", "silu"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "relu6": nn.ReLU6, "hardswish": nn.Hardswish, "silu": nn.SiLU,
}


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``min_value``), never more than 10% down."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNAct(nn.Sequential):
    """Conv2d (bias only without a norm) -> BatchNorm2d -> activation, "same" padding for odd kernels."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, activation: Activation | None = "relu",
                 norm_layer: Callable[[int], nn.Module] | None = nn.BatchNorm2d) -> None:
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2,
                                             groups=groups, bias=norm_layer is None)]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation is not None:
            layers.append(ACTIVATIONS[activation](inplace=True))
        super().__init__(*layers)
        self.out_channels = out_channels


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): ``x * gate(fc2(act(fc1(avgpool(x)))))`` with 1x1 convs."""

    def __init__(self, channels: int, squeeze_channels: int, activation: Activation = "relu",
                 gate: Literal["sigmoid", "hardsigmoid"] = "sigmoid") -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = ACTIVATIONS[activation]()
        self.scale_activation = nn.Sigmoid() if gate == "sigmoid" else nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))
        return self.scale_activation(scale) * x


class StochasticDepth(nn.Module):
    """Drop the residual branch of whole samples with probability ``p`` in training (Huang et al. 2016)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"stochastic depth probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


@dataclass(frozen=True)
class InvertedResidualConfig:
    """One inverted-residual block: 1x1 expand (skipped when ``expanded == input``), kxk depthwise with the
    stride, squeeze-and-excitation to ``se_channels`` (0: none), linear 1x1 projection to ``out``."""

    input_channels: int
    kernel: int
    expanded_channels: int
    out_channels: int
    stride: int
    activation: Activation
    se_channels: int = 0

    @property
    def residual(self) -> bool:
        """Whether the block adds its input (same shape in and out)."""
        return self.stride == 1 and self.input_channels == self.out_channels


#: how a family names and nests the block's layers (the keys of its torchvision state dict)
#: nested: ``block.{i}`` ConvBNAct/SE children (MobileNetV3, EfficientNet);
#: flat_projection: the projection's conv and norm are direct children (``conv.{i}``, MobileNetV2);
#: flat: every conv, norm and activation is a direct child (``layers.{i}``, MnasNet).
Layout = Literal["nested", "flat_projection", "flat"]
_BODY_NAME = {"nested": "block", "flat_projection": "conv", "flat": "layers"}


class InvertedResidual(nn.Module):
    """Inverted residual with a linear bottleneck (Sandler et al. 2018, Fig. 3b / Table 1), configurable.

    ``se_layer(channels, squeeze)`` builds the SE module; ``stochastic_depth`` (EfficientNet) drops the
    residual branch in training only.
    """

    def __init__(self, cfg: InvertedResidualConfig, norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
                 layout: Layout = "nested", se_layer: Callable[[int, int], nn.Module] = SqueezeExcitation,
                 stochastic_depth: float | None = None) -> None:
        super().__init__()
        if cfg.stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {cfg.stride}")
        self.cfg = cfg
        layers: list[nn.Module] = []
        hidden = cfg.expanded_channels
        if hidden != cfg.input_channels:
            layers.append(ConvBNAct(cfg.input_channels, hidden, 1, activation=cfg.activation, norm_layer=norm_layer))
        layers.append(ConvBNAct(hidden, hidden, cfg.kernel, cfg.stride, groups=hidden, activation=cfg.activation,
                                norm_layer=norm_layer))
        if cfg.se_channels:
            layers.append(se_layer(hidden, cfg.se_channels))
        layers.append(ConvBNAct(hidden, cfg.out_channels, 1, activation=None, norm_layer=norm_layer))
        if layout == "flat_projection":
            layers[-1:] = list(layers[-1])
        elif layout == "flat":
            layers = [m for layer in layers for m in layer.children()]
        self._body = _BODY_NAME[layout]
        self.add_module(self._body, nn.Sequential(*layers))
        self.stochastic_depth = StochasticDepth(stochastic_depth) if stochastic_depth is not None else None
        self.out_channels = cfg.out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self._modules[self._body](x)
        if not self.cfg.residual:
            return out
        if self.stochastic_depth is not None:
            out = self.stochastic_depth(out)
        return out + x


def init_weights(model: nn.Module, linear_std: float | None = 0.01) -> None:
    """torchvision's initialisation for the mobile families: He-normal (fan-out) convolutions with zero bias,
    unit batch norm, and normal(0, ``linear_std``) linear layers (``None``: leave the linear layers as built)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0, linear_std)
            nn.init.zeros_(m.bias)
