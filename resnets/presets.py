"""What a run measures: the speed presets and the convergence experiments, and the user's
filters on them. Torch-free, so a plan (and ``--dry-run``) is made before torch loads.

A new preset is an entry of ``PRESETS`` (and of ``PRESET_SEEDS``); a new convergence
experiment is an entry of ``EXPERIMENTS``.
"""
from __future__ import annotations

from dataclasses import replace
from itertools import product
from typing import NamedTuple

from .case import CHOICES, DIMENSIONS, VARIANTS, Case
from .errors import UserError
from .schema import trial_id

# Quick: every family, both modes, both formats, fp32 and bf16, small inputs; fits a
# 2-core CPU in about five minutes. Full: ImageNet resolution, large batches, every
# precision, eager and compile, for GPU runners (nightly). Launch: the launch-bound
# small models in every compile mode and CUDA graphs. Gate: what a pull request can
# break, sized for one side in under 20 minutes on one H100 (`resnets run --dry-run
# --preset gate` prints the plan): every family in both modes, the strict-fp32 and
# default (TF32) baselines and the variants people ship (channels-last bf16/fp16), and
# torch.compile where it matters most. A preset lists either the product of
# ``memory_formats x precisions x compile`` or explicit ``variants``, and ``compiled``
# adds (memory format, precision) variants under torch.compile for some models;
# ``deploy`` adds whole variants to some models' inference cases where they can run.
# What users ship (measure.deploy), added to a preset's inference cases of some models
# (its "deploy"), each where it can run: an AOTInductor package in fp32 and in
# channels-last bf16, and int8 (CPU only) compiled and packaged.
DEPLOY = (("contiguous", "fp32", "export-aoti"), ("channels_last", "bf16", "export-aoti"),
          ("contiguous", "int8", "compile"), ("contiguous", "int8", "export-aoti"))
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
        "precisions": ("fp32", "bf16"), "compile": ("eager",), "budget_s": 2.0,
        # ImageNet-size cases too: at 64x64 and batch 4 a CPU's speed-ups invert (ResNet-50
        # channels-last 0.84x, bf16 0.86x; at 224x224, batch 8, 1.8x and 3x).
        "extra": (("resnet18", ("infer", "train"), (3, 224, 224), 4),
                  ("resnet50", ("infer",), (3, 224, 224), 4)),
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
        "memory_formats": CHOICES["memory_format"],
        "precisions": tuple(q for q in CHOICES["precision"] if q != "int8"),
        "compile": ("eager", "compile"), "budget_s": 10.0,
        "deploy": {"resnet50": DEPLOY, "resnet18": DEPLOY},
    },
    # The small models that leave a big GPU idle between kernel launches, in every way
    # of cutting launch overhead: eager, each torch.compile mode, eager CUDA graphs.
    "launch": {
        "models": {"lenet_bn": ((1, 28, 28), 256), "resnet20": ((3, 32, 32), 128),
                   "resnet56": ((3, 32, 32), 128)},
        "modes": ("infer", "train"), "devices": ("cuda",),
        "memory_formats": ("contiguous",), "precisions": ("default", "bf16"),
        "compile": CHOICES["compile"], "budget_s": 5.0,
    },
    "gate": {
        "models": {
            "lenet_bn": ((1, 28, 28), 256), "resnet20": ((3, 32, 32), 128),
            "plain20": ((3, 32, 32), 128), "resnet18": ((3, 224, 224), 128),
            "resnet50": ((3, 224, 224), 64), "plain18": ((3, 224, 224), 128),
            "tv_resnet50": ((3, 224, 224), 64),
        },
        "modes": ("infer", "train"), "devices": ("cuda",),
        "variants": (("contiguous", "default", "eager"), ("contiguous", "fp32", "eager"),
                     ("channels_last", "bf16", "eager"), ("channels_last", "fp16", "eager")),
        "compiled": {"resnet50": (("channels_last", "bf16"),),
                     "resnet18": (("channels_last", "bf16"),)},
        "budget_s": 2.0,  # per side: paired timing gives each side 10 blocks of 0.2 s
    },
    # A GPU's reference report (bench/gpu_proof.py): ImageNet-size ResNets in both modes,
    # PyTorch's default numerics against what people ship (channels-last bf16, eager and
    # compiled), and the batch sweep of ResNet-50 training.
    "reference": {
        "models": {"resnet18": ((3, 224, 224), 256), "resnet50": ((3, 224, 224), 128)},
        "modes": ("infer", "train"), "devices": ("cuda",),
        "variants": (("contiguous", "default", "eager"), ("channels_last", "bf16", "eager")),
        "compiled": {"resnet50": (("channels_last", "bf16"),),
                     "resnet18": (("channels_last", "bf16"),)},
        "sweep": (("resnet50", "train", "channels_last-bf16-eager"),),
        "budget_s": 3.0,
    },
}


class Selection:
    """A preset narrowed (or widened) by the user's filters: one per dimension's list
    option (``case.DIMENSIONS``), by option name (``models``, ``memory_formats``, ...);
    a filter not given is the preset's choice. Values arrive parsed and checked
    (``resnets.options``); ``batch_sizes`` may be "auto" (a sweep: ``measure.sweep``)."""

    def __init__(self, preset: str = "quick", global_batch: int | None = None, **filters):
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r} (presets: {', '.join(PRESETS)})")
        unknown = set(filters) - FILTERS
        if unknown:
            raise TypeError(f"not a filter: {', '.join(sorted(unknown))}")
        self.preset, self.global_batch = preset, global_batch
        self.filters = {k: v for k, v in filters.items() if v is not None}

    @classmethod
    def from_options(cls, opts: dict) -> Selection:
        """From ``resnets.options.values`` (extra keys ignored)."""
        return cls(opts.get("preset") or "quick", opts.get("global_batch"),
                   **{k: opts[k] for k in FILTERS if opts.get(k) is not None})

    def get(self, option: str):
        return self.filters.get(option)

    def cases(self) -> list[Case]:
        """Every case of the selection, model-major so a model's variants run together.
        A model outside the preset runs at its own input (``resnets models``), batch 1."""
        p = PRESETS[self.preset]
        sizes = self.get("image_sizes")
        out = []
        for model in self.get("models") or tuple(p["models"]):
            if model in p["models"]:
                shape, batch = p["models"][model]
            else:
                from . import models  # torch: only for a model the preset does not hold

                shape, batch = models.spec(model).input_shape, 1
            shapes = [(shape[0], s, s) for s in sizes] if sizes else [shape]
            out += self._product(model, self.get("modes") or p["modes"], shapes, batch)
        if not sizes:  # explicit sizes replace the preset's, extras included
            for model, modes, shape, batch in p.get("extra", ()):
                if not self.get("models") or model in self.get("models"):
                    modes = [m for m in modes if not self.get("modes") or m in self.get("modes")]
                    out += self._product(model, modes, [shape], batch)
        return list(dict.fromkeys(out))

    def _product(self, model: str, modes, shapes, batch: int) -> list[Case]:
        """Every case of one model: the product of each dimension's values, in the order
        the dimensions are declared; a dimension that does not apply to a row (loader
        workers without real inputs) keeps its default there."""
        asked = self.get("batch_sizes")
        fixed = {"model": (model,), "mode": tuple(modes), "input_shape": tuple(shapes),
                 "batch_size": (batch,) if asked in (None, "auto") else asked,
                 "sweep": (asked == "auto",)}
        rows: list[dict] = [{}]
        for d in DIMENSIONS.values():
            if d.role == "variant":
                if d is VARIANTS[0]:  # the variant dimensions together: a preset lists them
                    rows = [{**r, **v} for r in rows
                            for v in self._variants(model) + self._deploy(model, r)]
                continue
            rows = [{**r, d.name: v} for r in rows for v in
                    (fixed[d.name] if d.name in fixed else self._values(d, r))]
        swept = {(m, mode, v) for m, mode, v in PRESETS[self.preset].get("sweep", ())}
        cases = [Case(**self._split(r)) for r in rows]
        return [replace(c, sweep=True) if (c.model, c.mode, c.variant) in swept and asked is None
                else c for c in cases]

    def _values(self, d, row: dict) -> tuple:
        if d.applies is not None and not d.applies(row):
            return (d.default,)
        given = self.get(d.option) if d.option else None
        if given is not None:
            return tuple(given)
        if d.name == "strategy":  # data parallelism asked for: DDP unless named
            return ("ddp",) if self.get("world_sizes") else ("none",)
        return tuple(PRESETS[self.preset].get(d.option) or (d.default,))

    def _split(self, row: dict) -> dict:
        """Strong scaling (``global_batch``): the global batch split over the world size."""
        if not self.global_batch or row["strategy"] == "none":
            return row
        if self.global_batch % row["world_size"]:
            raise UserError(f"--global-batch {self.global_batch} does not split over "
                            f"a world size of {row['world_size']}")
        return {**row, "batch_size": self.global_batch // row["world_size"]}

    def _deploy(self, model: str, row: dict) -> list[dict]:
        """The preset's ``deploy`` variants of ``model`` for an inference ``row``: those
        the user's filters let through and that can run on the row's device."""
        listed = PRESETS[self.preset].get("deploy", {}).get(model, ())
        if row["mode"] != "infer":
            return []
        out = [dict(zip(NAMES, v)) for v in listed
               if all(self.get(d.option) is None or x in self.get(d.option)
                      for d, x in zip(VARIANTS, v))]
        return [v for v in out if Case(**{**row, **v}).unsupported_reason() is None]

    def _variants(self, model: str) -> list[dict]:
        """The variant dimensions' values of ``model``: the preset's listed variants (each
        a tuple over the first variant dimensions) or their product, narrowed by the
        user's filters."""
        p = PRESETS[self.preset]

        def values(d):
            return tuple(self.get(d.option) or p.get(d.option) or (d.default,))

        if "variants" not in p:
            return [dict(zip(NAMES, v)) for v in product(*map(values, VARIANTS))]
        listed = [*p["variants"], *((f, q, "compile") for f, q in p["compiled"].get(model, ()))]
        rest = VARIANTS[len(listed[0]):]
        return [{**dict(zip(NAMES, v)), **dict(zip([d.name for d in rest], r))}
                for v in listed
                if all(self.get(d.option) is None or x in self.get(d.option)
                       for d, x in zip(VARIANTS, v))
                for r in product(*map(values, rest))]


FILTERS = frozenset(d.option for d in DIMENSIONS.values() if d.option)
NAMES = tuple(d.name for d in VARIANTS)


# --- convergence experiments -------------------------------------------------------------

DATASETS = ("digits", "digits-augmented", "fashion-mnist", "cifar10", "synthetic")

# Seeds per convergence run, and where it runs; a preset without seeds (gate) has none.
PRESET_SEEDS = {"quick": (0, 1, 2), "full": (0, 1, 2, 3, 4), "gate": (), "launch": (),
                "reference": ()}
PRESET_DEVICE = {"quick": "cpu", "full": "cuda", "gate": "cuda", "launch": "cuda",
                 "reference": "cuda"}

# experiment -> preset -> what to run: dataset, target, budget, models (model ->
# (input_shape, batch size)), whether runs stop at the target, protocol overrides, and
# whether it runs when no experiment is named ("default"). "expect" lists what the
# literature says the runs should show; the report computes from the runs whether they
# do (resnets.report.findings), never assumes it.
LENETS = {"lenet": ((1, 28, 28), 100), "lenet_bn": ((1, 28, 28), 100)}
DEPTHS = ("plain20", "plain56", "resnet20", "resnet56")
BN_EXPECT = ({"check": "faster", "fast": "lenet_bn", "slow": "lenet",
              "claim": "BatchNorm makes the sigmoid LeNet reach the target in fewer iterations"},)
DEGRADATION_EXPECT = (
    {"check": "worse", "worse": "plain56", "better": "plain20",
     "claim": "the deeper plain net trains worse (higher training error): degradation"},
    {"check": "not_worse", "model": "resnet56", "than": "resnet20",
     "claim": "the deeper ResNet trains no worse than the shallower one"},
)
# The seed notebook: Fashion-MNIST, ToTensor only (no normalization), an unshuffled
# DataLoader of batch 100, SGD lr 1.0, 10 epochs, test accuracy every 500 iterations.
# Its figures: plain LeNet 10.0% at iteration 500 and 84.3% after 10 epochs (6,000
# iterations); LeNet with BatchNorm 82.1% and 90.0%.
SEED = {"dataset": "fashion-mnist", "target_acc": 0.99, "max_iters": 6000, "models": LENETS,
        "stop_at_target": False, "default": True,
        "protocol": (("eval_every", 500), ("shuffle", False), ("normalize", False)),
        "expect": ({"check": "seed", "at": 500,
                    "figures": {"lenet": (0.10, 0.8428), "lenet_bn": (0.8207, 0.8998)},
                    "claim": "the seed notebook's accuracies at iteration 500 and after "
                             "10 epochs"},)}
EXPERIMENTS = {
    # BatchNorm makes a sigmoid LeNet trainable at lr 1.0 (the seed notebook's comparison):
    # time to target, so each run stops at the target. On digits, evaluated every 5
    # iterations early on, lenet_bn's advantage is resolved; plain LeNet gets 3,000
    # iterations (223 epochs) to break out (in the seed notebook it did near 2,000).
    "bn": {
        "quick": {"dataset": "digits", "target_acc": 0.9, "max_iters": 3000,
                  "models": LENETS, "stop_at_target": True, "expect": BN_EXPECT},
        "full": {"dataset": "fashion-mnist", "target_acc": 0.85, "max_iters": 6000,
                 "models": LENETS, "stop_at_target": True, "expect": BN_EXPECT},
    },
    # He et al. 2015 Fig. 6: the deeper plain net trains worse than the shallower one,
    # the deeper ResNet does not. Whole training-error curves are the point, so runs go
    # on past the target. Quick: digits at their native 8x8 (a 56-layer net at 32x32 is
    # ~0.7 s/step on 2 cores), 150 iterations.
    "degradation": {
        "quick": {"dataset": "digits", "target_acc": 0.9, "max_iters": 150,
                  "models": {m: ((1, 8, 8), 128) for m in DEPTHS},
                  "stop_at_target": False, "expect": DEGRADATION_EXPECT},
        "full": {"dataset": "cifar10", "target_acc": 0.8, "max_iters": 8000,
                 "models": {m: ((3, 32, 32), 128) for m in DEPTHS},
                 "stop_at_target": False, "expect": DEGRADATION_EXPECT},
    },
    # The same question on a harder offline task (augmented digits at 16x16, named as
    # such), for where 1,347 8x8 images are too easy for depth to matter. Run on request.
    "degradation-augmented": {
        "quick": {"dataset": "digits-augmented", "target_acc": 0.9, "max_iters": 400,
                  "models": {m: ((1, 16, 16), 128) for m in DEPTHS},
                  "stop_at_target": False, "expect": DEGRADATION_EXPECT, "default": False},
    },
    # The seed notebook's exact protocol; needs the Fashion-MNIST files (--data-root).
    "seed": {"quick": {**SEED, "default": False}, "full": SEED},
}


class Trial(NamedTuple):
    """One planned convergence run: what the pytest suite parametrizes over."""

    case: Case
    dataset: str
    target_acc: float
    seed: int
    max_iters: int
    stop_at_target: bool = True
    experiment: str | None = None
    protocol: tuple = ()   # (name, value) overrides of the model's default protocol

    @property
    def id(self) -> str:
        return trial_id(self.case, self.dataset, self.seed, self.experiment)


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
    models = sel.get("models")
    out = []
    for name in experiments or EXPERIMENTS:
        spec = EXPERIMENTS[name].get(preset)
        if spec is None or (not experiments and not spec.get("default", True)):
            continue
        for model, (shape, batch) in spec["models"].items():
            if models and model not in models:
                continue
            base = Case(model, "train", PRESET_DEVICE[preset], batch_size=batch,
                        input_shape=shape)
            for dev, fmt, prec in product(sel.get("devices") or (base.device,),
                                          sel.get("memory_formats") or (base.memory_format,),
                                          sel.get("precisions") or (base.precision,)):
                case = replace(base, device=dev, memory_format=fmt, precision=prec)
                out += [Trial(case, dataset or spec["dataset"], spec["target_acc"], seed,
                              spec["max_iters"], spec["stop_at_target"], name,
                              spec.get("protocol", ()))
                        for seed in PRESET_SEEDS[preset]]
    return out
