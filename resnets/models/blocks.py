"""Residual blocks and the stage builder shared by the ImageNet and CIFAR ResNets.

Attribute names (conv1, bn1, ..., downsample.0/1) follow torchvision so that its
``state_dict`` loads into our models with ``strict=True``. ``residual=False`` gives the
"plain" twin of a block: the same convolutions with the shortcut removed, as in the
degradation experiment of He et al. 2015.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3(inplanes: int, planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(inplanes: int, planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False)


class PadShortcut(nn.Module):
    """He et al.'s option A: subsample spatially and zero-pad the new channels (no weights)."""

    def __init__(self, planes: int, stride: int):
        super().__init__()
        self.planes, self.stride = planes, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        extra = self.planes - x.shape[1]
        return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (ResNet-18/34 and the CIFAR ResNets)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, residual: bool = True):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.residual = residual

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4); stride on the 3x3 conv as torchvision's ResNet v1.5."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, residual: bool = True):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.residual = residual

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


def make_layer(block: type[BasicBlock] | type[Bottleneck], inplanes: int, planes: int,
               blocks: int, stride: int = 1, shortcut: str = "projection",
               residual: bool = True) -> tuple[nn.Sequential, int]:
    """One stage of ``blocks`` blocks; returns it and its output channels.

    When the first block changes shape, its shortcut is a 1x1 conv + BN projection
    (``shortcut="projection"``, ImageNet) or zero-padding (``shortcut="pad"``, CIFAR
    option A). A plain stage (``residual=False``) has no shortcut at all.
    """
    outplanes = planes * block.expansion
    downsample = None
    if residual and (stride != 1 or inplanes != outplanes):
        if shortcut == "projection":
            downsample = nn.Sequential(conv1x1(inplanes, outplanes, stride),
                                       nn.BatchNorm2d(outplanes))
        elif shortcut == "pad":
            downsample = PadShortcut(outplanes, stride)
        else:
            raise ValueError(f"unknown shortcut {shortcut!r} (projection, pad)")
    layers = [block(inplanes, planes, stride, downsample, residual)]
    layers += [block(outplanes, planes, residual=residual) for _ in range(1, blocks)]
    return nn.Sequential(*layers), outplanes


def init_weights(model: nn.Module, zero_init_residual: bool = False) -> None:
    """He (fan_out) init for convs, unit BN; optionally zero each block's last BN gamma
    so every residual block starts as the identity (Goyal et al. 2017)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, (BasicBlock, Bottleneck)):
                nn.init.zeros_(m.last_bn().weight)
