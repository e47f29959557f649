"""LeNet-5 (LeCun, Bottou, Bengio & Haffner, 1998): 1x32x32 input, tanh, average-pool subsampling.

C1 6@28x28 (156) -> S2 6@14x14 -> C3 16@10x10 (2,416) -> S4 16@5x5 -> C5 120@1x1 (48,120)
-> F6 84 (10,164) -> output 10 (850) = 61,706 parameters. C3 is fully connected to S2 (the paper's
sparse connection table is the one simplification, as in every modern reimplementation) and the
subsampling layers have no trainable coefficients.
"""

from __future__ import annotations

from torch import Tensor, nn

from edgecnn.models.registry import register_model


class LeNet5(nn.Module):
    """LeNet-5 with the paper's layer sizes."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5), nn.Tanh(), nn.AvgPool2d(2),      # C1, S2
            nn.Conv2d(6, 16, kernel_size=5), nn.Tanh(), nn.AvgPool2d(2),     # C3, S4
            nn.Conv2d(16, 120, kernel_size=5), nn.Tanh(),                    # C5
        )
        self.classifier = nn.Sequential(nn.Flatten(1), nn.Linear(120, 84), nn.Tanh(),
                                        nn.Linear(84, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


@register_model("lenet5", "lenet", input_size=(32, 32), channels=1, num_classes=10, mean=(0.5,), std=(0.5,),
                macs=416_520,
                reference="LeCun et al. 1998, Gradient-based learning applied to document recognition")
def lenet5(num_classes: int = 10) -> LeNet5:
    """LeNet-5, 1x32x32 grayscale input (LeCun et al. 1998, Fig. 2): 61,706 parameters."""
    return LeNet5(num_classes)
