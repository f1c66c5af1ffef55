"""What a run measures: the speed presets and the convergence experiments, and the user's
filters on them. Torch-free, so a plan (and ``--dry-run``) is made before torch loads.

A new preset is an entry of ``PRESETS`` (and of ``PRESET_SEEDS``); a new convergence
experiment is an entry of ``EXPERIMENTS``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import product
from typing import NamedTuple

from .case import CHOICES, Case
from .errors import UserError
from .schema import trial_id

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
        "memory_formats": CHOICES["memory_format"],
        "precisions": ("fp32", "bf16"), "compile": ("eager",),
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
        "memory_formats": CHOICES["memory_format"], "precisions": CHOICES["precision"],
        "compile": CHOICES["compile"],
    },
}
DIMENSIONS = ("modes", "devices", "memory_formats", "precisions", "compile")


@dataclass(frozen=True)
class Selection:
    """A preset narrowed (or widened) by the user's filters; ``None`` = preset's choice.
    Values arrive parsed and checked (``resnets.options``)."""

    preset: str = "quick"
    models: tuple[str, ...] | None = None
    modes: tuple[str, ...] | None = None
    devices: tuple[str, ...] | None = None
    memory_formats: tuple[str, ...] | None = None
    precisions: tuple[str, ...] | None = None
    compile: tuple[str, ...] | None = None
    batch_sizes: tuple[int, ...] | None = None
    image_sizes: tuple[int, ...] | None = None

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise UserError(f"unknown preset {self.preset!r} (presets: {', '.join(PRESETS)})")

    @classmethod
    def from_options(cls, opts: dict) -> Selection:
        """From ``resnets.options.values`` (extra keys ignored)."""
        return cls(**{k: opts.get(k) for k in cls.__dataclass_fields__ if k in opts})

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
            shapes = [(shape[0], s, s) for s in self.image_sizes] if self.image_sizes else [shape]
            for mode, dev, fmt, prec, comp, bs, sh in product(
                    *(getattr(self, d) or p[d] for d in DIMENSIONS),
                    self.batch_sizes or (batch,), shapes):
                out.append(Case(model, mode, dev, fmt, prec, comp, bs, sh))
        return out


# --- convergence experiments -------------------------------------------------------------

PRESET_SEEDS = {"quick": (0, 1, 2), "full": (0, 1, 2, 3, 4)}
PRESET_DEVICE = {"quick": "cpu", "full": "cuda"}

# experiment -> preset -> what to run. "models" maps a model to (input_shape, batch size).
EXPERIMENTS = {
    # BatchNorm makes a sigmoid LeNet trainable at lr 1.0 (the seed notebook's comparison):
    # time to target, so each run stops at the target. On digits lenet_bn is past 90% at
    # the first evaluation (50) while plain LeNet sits at chance for the whole 600.
    "bn": {
        "quick": {"dataset": "digits", "target_acc": 0.9, "max_iters": 600,
                  "models": {"lenet": ((1, 28, 28), 100), "lenet_bn": ((1, 28, 28), 100)},
                  "stop_at_target": True},
        "full": {"dataset": "fashion-mnist", "target_acc": 0.85, "max_iters": 6000,
                 "models": {"lenet": ((1, 28, 28), 100), "lenet_bn": ((1, 28, 28), 100)},
                 "stop_at_target": True},
    },
    # He et al. 2015 Fig. 6: the deeper plain net trains worse than the shallower one.
    # Whole training-error curves are the point, so runs go on past the target.
    # Quick: digits at their native 8x8 (a 56-layer net at 32x32 is ~0.7 s/step on 2 cores),
    # 150 iterations: the whole quick preset (both experiments, 3 seeds) then took 197 s on
    # the shared 2-core CPU; plain56 is still far from plain20's zero training error.
    "degradation": {
        "quick": {"dataset": "digits", "target_acc": 0.9, "max_iters": 150,
                  "models": {m: ((1, 8, 8), 128)
                             for m in ("plain20", "plain56", "resnet20", "resnet56")},
                  "stop_at_target": False},
        "full": {"dataset": "cifar10", "target_acc": 0.8, "max_iters": 8000,
                 "models": {m: ((3, 32, 32), 128)
                            for m in ("plain20", "plain56", "resnet20", "resnet56")},
                 "stop_at_target": False},
    },
}


class Trial(NamedTuple):
    """One planned convergence run: what the pytest suite parametrizes over."""

    case: Case
    dataset: str
    target_acc: float
    seed: int
    max_iters: int
    stop_at_target: bool = True

    @property
    def id(self) -> str:
        return trial_id(self.case, self.dataset, self.seed)


def trials(preset: str = "quick", experiments=None, selection: Selection | None = None,
           dataset: str | None = None) -> list[Trial]:
    """Every run of ``experiments`` (default: all) in ``preset``, model-major then seed.
    A ``selection``'s models filter them; its devices, formats and precisions (when given)
    multiply them; ``dataset`` replaces each experiment's."""
    if preset not in PRESET_SEEDS:
        raise UserError(f"unknown preset {preset!r} (presets: {', '.join(PRESET_SEEDS)})")
    unknown = [n for n in experiments or () if n not in EXPERIMENTS]
    if unknown:
        raise UserError(f"unknown experiment {unknown[0]!r} "
                        f"(experiments: {', '.join(EXPERIMENTS)})")
    sel = selection or Selection(preset)
    out = []
    for name in experiments or EXPERIMENTS:
        spec = EXPERIMENTS[name][preset]
        for model, (shape, batch) in spec["models"].items():
            if sel.models and model not in sel.models:
                continue
            base = Case(model, "train", PRESET_DEVICE[preset], batch_size=batch,
                        input_shape=shape)
            for dev, fmt, prec in product(sel.devices or (base.device,),
                                          sel.memory_formats or (base.memory_format,),
                                          sel.precisions or (base.precision,)):
                case = replace(base, device=dev, memory_format=fmt, precision=prec)
                out += [Trial(case, dataset or spec["dataset"], spec["target_acc"], seed,
                              spec["max_iters"], spec["stop_at_target"])
                        for seed in PRESET_SEEDS[preset]]
    return out
