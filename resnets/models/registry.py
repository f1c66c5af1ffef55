"""A name -> builder registry, so every tool speaks of models by one name.

Builders register themselves with ``@register(...)`` next to their definition; the
registry also records what a caller needs to feed a model without building it first
(input shape, classes) and which torchvision model, if any, it must match.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


class UnknownModelError(KeyError, ValueError):
    """Raised for a model name that is not registered; the message suggests close names."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    input_shape: tuple[int, int, int]  # (C, H, W) the model was designed for
    num_classes: int
    torchvision: str | None = None  # name of the torchvision counterpart, if any


_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_SPECS: dict[str, ModelSpec] = {}


def register(family: str, input_shape: tuple[int, int, int], num_classes: int,
             torchvision: str | None = None):
    """Decorator registering ``fn`` under its own name, with its spec."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = fn.__name__
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} registered twice")
        _BUILDERS[name] = fn
        _SPECS[name] = ModelSpec(name, family, tuple(input_shape), num_classes, torchvision)
        return fn

    return deco


def names(family: str | None = None) -> list[str]:
    """Registered model names, in registration order (optionally one family)."""
    return [n for n, s in _SPECS.items() if family is None or s.family == family]


def unknown_model_message(name: str, known) -> str:
    """"unknown model 'resnet5'; did you mean resnet50, ...? (known: ...)"."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown model {name!r}{hint} (known: {', '.join(known)})"


def _check(name: str) -> str:
    if name not in _BUILDERS:
        raise UnknownModelError(unknown_model_message(name, _BUILDERS))
    return name


def spec(name: str) -> ModelSpec:
    return _SPECS[_check(name)]


def create(name: str, **kwargs) -> nn.Module:
    """Build model ``name``; keyword arguments go to its builder (e.g. ``num_classes``)."""
    return _BUILDERS[_check(name)](**kwargs)
