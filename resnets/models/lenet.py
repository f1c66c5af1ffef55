"""LeNet-5 as the seed notebook wrote it: sigmoid activations and average pooling.

``lenet_bn`` is the seed's ``LeNet_Norm``: a BatchNorm after every conv/linear layer
except the classifier, placed before the sigmoid. The pair is the project's first case
study (BatchNorm makes a sigmoid LeNet trainable at lr 1.0).
"""
from __future__ import annotations

from torch import nn

from .registry import register


def _act(channels: int, batch_norm: bool, dims: int) -> list[nn.Module]:
    norm = [nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)]
    return (norm if batch_norm else []) + [nn.Sigmoid()]


class LeNet(nn.Module):
    """Conv(1->6,k5,p2)-Sigmoid-AvgPool-Conv(6->16,k5)-Sigmoid-AvgPool-FC120-FC84-FC10."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, batch_norm: bool = False):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2), *_act(6, batch_norm, 2),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), *_act(16, batch_norm, 2),
            nn.AvgPool2d(kernel_size=2, stride=2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), *_act(120, batch_norm, 1),
            nn.Linear(120, 84), *_act(84, batch_norm, 1),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


@register("lenet", (1, 28, 28), 10)
def lenet(**kw) -> LeNet:
    """LeNet-5 with sigmoid and average pooling (the seed's LeNet)."""
    return LeNet(batch_norm=False, **kw)


@register("lenet", (1, 28, 28), 10)
def lenet_bn(**kw) -> LeNet:
    """LeNet-5 with BatchNorm before every sigmoid (the seed's LeNet_Norm)."""
    return LeNet(batch_norm=True, **kw)
