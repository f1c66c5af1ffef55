"""Which cases a run measures: presets, plus comma-separated filters from the user.

Torch-free, so option errors are reported before anything heavy is imported. The same
parsing serves the pytest options (``--bench-models ...``) and the CLI (``resnets run``).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product

from ..errors import UserError
from .case import CHOICES, Case

# Quick: every family, both modes, both formats, fp32 and bf16, small inputs; fits a
# 2-core CPU in about five minutes. Full: ImageNet resolution, large batches, every
# precision, eager and compile, for GPU runners.
PRESETS = {
    "quick": {
        "models": {
            # model: (input_shape, batch_size)
            "lenet": ((1, 28, 28), 64), "lenet_bn": ((1, 28, 28), 64),
            "resnet20": ((3, 32, 32), 16), "plain20": ((3, 32, 32), 16),
            "resnet18": ((3, 64, 64), 8), "resnet50": ((3, 64, 64), 4),
            "plain18": ((3, 64, 64), 8), "tv_resnet18": ((3, 64, 64), 8),
        },
        "modes": ("infer", "train"), "devices": ("cpu", "cuda"),
        "formats": CHOICES["memory_format"],
        "precisions": ("fp32", "bf16"), "compile": ("eager",), "batch_sizes": None,
    },
    "full": {
        "models": {
            "lenet": ((1, 28, 28), 256), "lenet_bn": ((1, 28, 28), 256),
            "resnet20": ((3, 32, 32), 128), "resnet56": ((3, 32, 32), 128),
            "resnet110": ((3, 32, 32), 128), "plain20": ((3, 32, 32), 128),
            "plain56": ((3, 32, 32), 128),
            "resnet18": ((3, 224, 224), 256), "resnet34": ((3, 224, 224), 256),
            "resnet50": ((3, 224, 224), 128), "resnet101": ((3, 224, 224), 64),
            "resnet152": ((3, 224, 224), 32), "plain18": ((3, 224, 224), 256),
            "plain34": ((3, 224, 224), 256), "tv_resnet50": ((3, 224, 224), 128),
        },
        "modes": ("infer", "train"), "devices": ("cuda",),
        "formats": CHOICES["memory_format"], "precisions": CHOICES["precision"],
        "compile": CHOICES["compile"], "batch_sizes": None,
    },
}


def split(value: str | None, option: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...] | None:
    """``"a,b"`` -> ``("a", "b")``; checks each against ``allowed`` with a usage error."""
    if value is None:
        return None
    items = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    if not items:
        raise UserError(f"{option} needs at least one value")
    if allowed is not None:
        bad = [v for v in items if v not in allowed]
        if bad:
            raise UserError(f"{option}: invalid value {bad[0]!r} (valid: {', '.join(allowed)})")
    return items


def positive_ints(value: str | None, option: str) -> tuple[int, ...] | None:
    items = split(value, option)
    if items is None:
        return None
    try:
        out = tuple(int(v) for v in items)
    except ValueError:
        raise UserError(f"{option}: batch sizes must be integers, got {value!r}") from None
    if min(out) < 1:
        raise UserError(f"{option}: batch sizes must be >= 1, got {value!r}")
    return out


@dataclass(frozen=True)
class Selection:
    """A preset narrowed (or widened) by the user's filters; ``None`` = preset's choice."""

    preset: str = "quick"
    models: tuple[str, ...] | None = None
    modes: tuple[str, ...] | None = None
    devices: tuple[str, ...] | None = None
    formats: tuple[str, ...] | None = None
    precisions: tuple[str, ...] | None = None
    compile: tuple[str, ...] | None = None
    batch_sizes: tuple[int, ...] | None = None

    @classmethod
    def parse(cls, preset="quick", models=None, modes=None, devices=None, formats=None,
              precisions=None, compile=None, batch_sizes=None, known_models=None) -> Selection:
        if preset not in PRESETS:
            raise UserError(f"--bench-preset: invalid value {preset!r} (valid: {', '.join(PRESETS)})")
        return cls(preset,
                   split(models, "models", tuple(known_models) if known_models else None),
                   split(modes, "modes", CHOICES["mode"]),
                   split(devices, "devices", CHOICES["device"]),
                   split(formats, "formats", CHOICES["memory_format"]),
                   split(precisions, "precisions", CHOICES["precision"]),
                   split(compile, "compile", CHOICES["compile"]),
                   positive_ints(batch_sizes, "batch sizes"))

    def cases(self, default_input=None) -> list[Case]:
        """Every case of the selection, model-major so a model's variants run together.

        A model outside the preset runs at ``default_input(model)`` -> (shape, batch)."""
        p = PRESETS[self.preset]
        out = []
        for model in self.models or tuple(p["models"]):
            if model in p["models"]:
                shape, batch = p["models"][model]
            elif default_input is not None:
                shape, batch = default_input(model)
            else:
                raise UserError(f"model {model!r} is not in the {self.preset} preset")
            for mode, dev, fmt, prec, comp, bs in product(
                    self.modes or p["modes"], self.devices or p["devices"],
                    self.formats or p["formats"], self.precisions or p["precisions"],
                    self.compile or p["compile"], self.batch_sizes or (batch,)):
                out.append(Case(model, mode, dev, fmt, prec, comp, bs, shape))
        return out
