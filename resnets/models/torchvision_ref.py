"""torchvision's own ResNets, registered as ``tv_<name>`` so that the harness can measure
ours against theirs in the same run (the report pairs ``tv_resnet50`` with ``resnet50``).

These wrap torchvision on purpose: they are the yardstick, not reference implementations.
torchvision is imported when one is built, not when this registers them: importing it
imports torch._dynamo (torchvision.ops), 2 s of every process that names a model.
"""
from __future__ import annotations

from torch import nn

from .registry import register


def _builder(name: str):
    def build(num_classes: int = 1000, in_channels: int = 3, **kw) -> nn.Module:
        import torchvision

        model = getattr(torchvision.models, name)(weights=None, num_classes=num_classes, **kw)
        if in_channels != 3:  # torchvision has no such option: swap the stem conv
            model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3,
                                    bias=False)
        return model

    build.__name__ = f"tv_{name}"
    build.__doc__ = f"torchvision.models.{name} (the yardstick for our {name})."
    return build


for _name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
    register("torchvision", (3, 224, 224), 1000, torchvision=_name)(_builder(_name))
