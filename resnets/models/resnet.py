"""ImageNet ResNets (He et al. 2015), weight-compatible with torchvision's, and plain twins."""
from __future__ import annotations

import torch
from torch import nn

from .blocks import BasicBlock, Bottleneck, init_weights, make_layer
from .registry import register


class ResNet(nn.Module):
    """7x7 stem, max-pool, four stages of 64/128/256/512 planes, global pool, classifier."""

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: list[int],
                 num_classes: int = 1000, in_channels: int = 3,
                 zero_init_residual: bool = False, residual: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        planes = 64
        for i, (width, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            stage, planes = make_layer(block, planes, width, blocks, stride=1 if i == 1 else 2,
                                       residual=residual)
            self.add_module(f"layer{i}", stage)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(planes, num_classes)
        init_weights(self, zero_init_residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


_IMAGENET = dict(family="resnet-imagenet", input_shape=(3, 224, 224), num_classes=1000)


@register(torchvision="resnet18", **_IMAGENET)
def resnet18(**kw) -> ResNet:
    """ResNet-18: BasicBlock x [2, 2, 2, 2]."""
    return ResNet(BasicBlock, [2, 2, 2, 2], **kw)


@register(torchvision="resnet34", **_IMAGENET)
def resnet34(**kw) -> ResNet:
    """ResNet-34: BasicBlock x [3, 4, 6, 3]."""
    return ResNet(BasicBlock, [3, 4, 6, 3], **kw)


@register(torchvision="resnet50", **_IMAGENET)
def resnet50(**kw) -> ResNet:
    """ResNet-50: Bottleneck x [3, 4, 6, 3] (v1.5, stride on the 3x3)."""
    return ResNet(Bottleneck, [3, 4, 6, 3], **kw)


@register(torchvision="resnet101", **_IMAGENET)
def resnet101(**kw) -> ResNet:
    """ResNet-101: Bottleneck x [3, 4, 23, 3]."""
    return ResNet(Bottleneck, [3, 4, 23, 3], **kw)


@register(torchvision="resnet152", **_IMAGENET)
def resnet152(**kw) -> ResNet:
    """ResNet-152: Bottleneck x [3, 8, 36, 3]."""
    return ResNet(Bottleneck, [3, 8, 36, 3], **kw)


_PLAIN = dict(family="plain-imagenet", input_shape=(3, 224, 224), num_classes=1000)


@register(**_PLAIN)
def plain18(**kw) -> ResNet:
    """ResNet-18's stack with every shortcut removed."""
    return ResNet(BasicBlock, [2, 2, 2, 2], residual=False, **kw)


@register(**_PLAIN)
def plain34(**kw) -> ResNet:
    """ResNet-34's stack with every shortcut removed."""
    return ResNet(BasicBlock, [3, 4, 6, 3], residual=False, **kw)
