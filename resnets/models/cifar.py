"""CIFAR ResNets of He et al. 2015, section 4.2, and their plain twins.

A 3x3 stem of 16 filters, three stages of n BasicBlocks with 16/32/64 filters on
32/16/8 maps, global average pooling and a 10-way classifier: 6n+2 weighted layers.
Shortcuts are identities, zero-padded when a stage doubles the channels ("option A"),
so the residual and plain nets have exactly the same parameters.
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import BasicBlock, conv3x3, init_weights, make_layer
from .registry import register


class CifarResNet(nn.Module):
    def __init__(self, n: int, num_classes: int = 10, in_channels: int = 3,
                 zero_init_residual: bool = False, residual: bool = True):
        super().__init__()
        self.conv1 = conv3x3(in_channels, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        planes = 16
        for i, width in enumerate((16, 32, 64), start=1):
            stage, planes = make_layer(BasicBlock, planes, width, n, stride=1 if i == 1 else 2,
                                       shortcut="pad", residual=residual)
            self.add_module(f"layer{i}", stage)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(planes, num_classes)
        init_weights(self, zero_init_residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _builder(depth: int, residual: bool):
    n = (depth - 2) // 6
    kind = "ResNet" if residual else "Plain net"

    def build(**kw) -> CifarResNet:
        return CifarResNet(n, residual=residual, **kw)

    build.__name__ = f"{'resnet' if residual else 'plain'}{depth}"
    build.__doc__ = f"CIFAR {kind}-{depth}: 3 stages x {n} BasicBlocks (16/32/64 filters)."
    return build


for _depth in (20, 32, 44, 56, 110):
    register("resnet-cifar", (3, 32, 32), 10)(_builder(_depth, residual=True))
for _depth in (20, 56):
    register("plain-cifar", (3, 32, 32), 10)(_builder(_depth, residual=False))
