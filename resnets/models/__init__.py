"""Reference models. Knows nothing about measuring: build a model by name and that's all.

A new model is a builder function decorated with ``@register(family, input_shape,
num_classes)`` in one of these modules (or a new one imported below); its name is then
known to every command, preset filter and report.

>>> from resnets import models
>>> m = models.create("resnet50", num_classes=10)
>>> models.spec("resnet20").input_shape
(3, 32, 32)
"""
# Importing a module registers its builders; this order is the order of names().
from . import lenet, resnet, cifar, torchvision_ref  # noqa: F401,I001
from .registry import ModelSpec, UnknownModelError, create, names, register, spec

__all__ = ["ModelSpec", "UnknownModelError", "create", "names", "register", "spec"]
