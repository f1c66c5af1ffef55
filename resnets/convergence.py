"""Convergence speed: how many iterations and seconds a model needs to reach a test accuracy.

One run (``run``) trains a fresh, seeded model on a dataset held as device tensors
(``resnets.data``) and evaluates the test accuracy every ``eval_every`` iterations until
the target is reached, the loss turns NaN/inf ("diverged", reported, never raised) or
the iteration budget is spent. Timing follows airbench / hlb-CIFAR10: ``train_s`` counts
only the training steps (the clock stops, after a device synchronize, for every
evaluation), ``total_s`` adds the evaluations; data loading and model building come
before the clock starts. Time-to-target is therefore resolved to one evaluation interval.

The protocol (``default_hyperparams``):

- LeNets: the seed notebook's, SGD lr 1.0, no momentum, no weight decay, constant lr,
  batch 100, test accuracy every 50 iterations.
- Every other model (CIFAR ResNets and plain nets, ImageNet ResNets): SGD lr 0.1,
  momentum 0.9, weight decay 5e-4, linear warm-up over the first 5% of the budget, then
  cosine decay to 0 at ``max_iters`` (so the schedule spans the budget, not the time to
  target, as in airbench).

Batches: each epoch is a permutation of the training set drawn from a generator seeded
with the run's seed, cut into full batches (the last partial one dropped, so BatchNorm
always sees ``batch_size`` samples). The model's weights come from ``torch.manual_seed``
with the same seed, so on CPU the same seed gives the same curve.

Train loss and train accuracy are the means over the interval's training batches (in
train mode, accumulated on the device, so no synchronization per step): the training
error curves of He et al.'s degradation figure.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, NamedTuple

from . import data as datasets
from . import models
from .errors import UserError
from .measure.case import Case
from .store import SCHEMA_VERSION

CURVE_KEYS = ("iters", "test_acc", "train_loss", "train_acc", "train_s", "total_s")
EVAL_BATCH = 1000  # test images per forward pass when evaluating


@dataclass(frozen=True)
class HyperParams:
    """SGD and its schedule. ``lr_at`` gives the learning rate of each iteration."""

    lr: float
    batch_size: int
    momentum: float = 0.0
    weight_decay: float = 0.0
    warmup_frac: float = 0.0          # linear warm-up over this share of max_iters
    schedule: str = "constant"        # "constant" | "cosine" (to 0 at max_iters)
    eval_every: int = 50

    def lr_at(self, it: int, max_iters: int) -> float:
        warmup = math.ceil(self.warmup_frac * max_iters)
        if it < warmup:
            return self.lr * (it + 1) / warmup
        if self.schedule == "cosine":
            done = (it - warmup) / max(1, max_iters - warmup)
            return self.lr * 0.5 * (1 + math.cos(math.pi * done))
        return self.lr

    def describe(self) -> dict:
        return {"optimizer": "SGD", **asdict(self)}


def default_hyperparams(model: str) -> HyperParams:
    """The documented protocol for ``model`` (see the module docstring)."""
    if models.spec(model).family == "lenet":
        return HyperParams(lr=1.0, batch_size=100, eval_every=50)
    return HyperParams(lr=0.1, batch_size=128, momentum=0.9, weight_decay=5e-4,
                       warmup_frac=0.05, schedule="cosine", eval_every=25)


def run(case: Case, dataset: str, target_acc: float, seed: int = 0, max_iters: int = 1000,
        eval_every: int | None = None, *, hp: HyperParams | None = None,
        stop_at_target: bool = True, data_root=None, download: bool = False,
        threads: int | None = None, progress: Callable[[dict], None] | None = None) -> dict:
    """Train ``case`` (mode "train") on ``dataset`` until ``target_acc``; the result dict.

    ``hp`` defaults to ``default_hyperparams(case.model)`` with the case's batch size.
    ``stop_at_target=False`` keeps training to ``max_iters`` (for whole curves).
    ``progress`` is called with the latest curve point after every evaluation.
    Raises ``UserError`` for bad arguments or missing data; never for a diverging run."""
    from .measure.runner import Settings, release_memory
    from .measure.workload import check_input_shape, math_mode, runtime_skip_reason

    _check(case, target_acc, max_iters)
    check_input_shape(case)
    reason = runtime_skip_reason(case)
    if reason:
        raise UserError(f"{case.id} cannot run here: {reason}")
    hp = replace(hp or default_hyperparams(case.model), batch_size=case.batch_size)
    if eval_every is not None:
        hp = replace(hp, eval_every=int(eval_every))
    if hp.eval_every < 1:
        raise UserError(f"the evaluation interval must be >= 1 iteration, not {hp.eval_every}")
    settings = Settings(threads=threads)
    settings.apply()
    t0 = time.perf_counter()
    ds = datasets.load(dataset, case.input_shape, case.device, data_root, download)
    if case.batch_size > len(ds.train_y):
        raise UserError(f"batch size {case.batch_size} is larger than the {dataset} "
                        f"training set ({len(ds.train_y)} images)")
    try:
        with math_mode(case):
            trainer = _Trainer(case, ds, hp, seed, max_iters)
            setup_s = time.perf_counter() - t0
            outcome = trainer.train(target_acc, stop_at_target, progress)
    finally:
        trainer = None
        release_memory()
    return _result(case, dataset, target_acc, seed, max_iters, hp, ds, outcome, setup_s,
                   settings, stop_at_target)


def _check(case: Case, target_acc: float, max_iters: int) -> None:
    if case.mode != "train":
        raise UserError(f"a convergence run trains: the case's mode must be 'train', "
                        f"not {case.mode!r}")
    if not 0 < target_acc <= 1:
        raise UserError(f"target accuracy must be in (0, 1], not {target_acc}")
    if max_iters < 1:
        raise UserError(f"max iterations must be >= 1, not {max_iters}")


@dataclass
class _Outcome:
    curve: dict = field(default_factory=lambda: {k: [] for k in CURVE_KEYS})
    reached_at: int | None = None     # index into the curve
    diverged_at_iter: int | None = None
    iters_run: int = 0
    train_s: float = 0.0
    eval_s: float = 0.0
    first_interval_s: float | None = None  # includes torch.compile's compilation if any


class _Trainer:
    """The model, optimizer and batch order of one run, and the timed loop."""

    def __init__(self, case: Case, ds, hp: HyperParams, seed: int, max_iters: int):
        import torch

        self.torch = torch
        self.case, self.ds, self.hp, self.max_iters = case, ds, hp, max_iters
        self.fmt = (torch.channels_last if case.memory_format == "channels_last"
                    else torch.contiguous_format)
        torch.manual_seed(seed)
        self.model = models.create(case.model, num_classes=ds.num_classes,
                                   in_channels=case.input_shape[0])
        self.model.to(case.device, memory_format=self.fmt).train()
        self.runner = torch.compile(self.model) if case.compile == "compile" else self.model
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=hp.lr,
                                         momentum=hp.momentum, weight_decay=hp.weight_decay)
        self.scaler = torch.amp.GradScaler(case.device) if case.precision == "fp16" else None
        self.order = torch.Generator().manual_seed(seed)
        self.batches: list = []

    def _next_batch(self):
        """The next batch's indices: a fresh seeded permutation per epoch, full batches."""
        if not self.batches:
            n, b = len(self.ds.train_y), self.case.batch_size
            perm = self.torch.randperm(n, generator=self.order).to(self.case.device)
            self.batches = list(perm[: n - n % b].split(b))[::-1]
        return self.batches.pop()

    def _step(self, it: int, sums) -> None:
        from .measure.workload import train_step

        idx = self._next_batch()
        x = self.ds.train_x[idx].contiguous(memory_format=self.fmt)
        y = self.ds.train_y[idx]
        for group in self.optimizer.param_groups:
            group["lr"] = self.hp.lr_at(it, self.max_iters)
        loss, out = train_step(self.case, self.runner, self.optimizer, self.scaler, x, y)
        sums[0] += loss.detach().float()
        sums[1] += (out.detach().argmax(1) == y).sum()

    def evaluate(self) -> float:
        from .measure.workload import autocast

        torch = self.torch
        self.model.eval()
        correct = torch.zeros((), dtype=torch.long, device=self.case.device)
        with torch.no_grad(), autocast(self.case):
            for x, y in zip(self.ds.test_x.split(EVAL_BATCH), self.ds.test_y.split(EVAL_BATCH)):
                correct += (self.runner(x.contiguous(memory_format=self.fmt)).argmax(1) == y).sum()
        self.model.train()
        return correct.item() / len(self.ds.test_y)

    def _sync(self) -> None:
        if self.case.device == "cuda":
            self.torch.cuda.synchronize()

    def train(self, target_acc: float, stop_at_target: bool, progress) -> _Outcome:
        torch, o, clock = self.torch, _Outcome(), time.perf_counter
        while o.iters_run < self.max_iters:
            n = min(self.hp.eval_every, self.max_iters - o.iters_run)
            sums = [torch.zeros((), device=self.case.device) for _ in range(2)]
            self._sync()
            start = clock()
            for i in range(o.iters_run, o.iters_run + n):
                self._step(i, sums)
            self._sync()
            interval = clock() - start
            o.train_s += interval
            o.first_interval_s = interval if o.first_interval_s is None else o.first_interval_s
            o.iters_run += n
            train_loss = sums[0].item() / n
            if not math.isfinite(train_loss):
                o.diverged_at_iter = o.iters_run
                break
            start = clock()
            test_acc = self.evaluate()
            o.eval_s += clock() - start
            point = {"iters": o.iters_run, "test_acc": test_acc, "train_loss": train_loss,
                     "train_acc": sums[1].item() / (n * self.case.batch_size),
                     "train_s": o.train_s, "total_s": o.train_s + o.eval_s}
            for k in CURVE_KEYS:
                o.curve[k].append(point[k])
            if progress is not None:
                progress(point)
            if o.reached_at is None and test_acc >= target_acc:
                o.reached_at = len(o.curve["iters"]) - 1
                if stop_at_target:
                    break
        return o


def _result(case, dataset, target_acc, seed, max_iters, hp, ds, o: _Outcome, setup_s,
            settings, stop_at_target) -> dict:
    import torch

    reached = o.reached_at is not None
    at = (lambda k: o.curve[k][o.reached_at]) if reached else (lambda k: None)
    status = "reached" if reached else "diverged" if o.diverged_at_iter else "not_reached"
    accs = o.curve["test_acc"]
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "convergence",
        "status": status,
        "case_id": case.id,
        "run_id": run_id(case, dataset, seed),
        **case.key(),
        "dataset": dataset,
        "target_acc": target_acc,
        "seed": seed,
        "max_iters": max_iters,
        "iters_to_target": at("iters"),
        "samples_to_target": at("iters") * case.batch_size if reached else None,
        "train_s_to_target": at("train_s"),
        "total_s_to_target": at("total_s"),
        "best_acc": max(accs) if accs else None,
        "final_acc": accs[-1] if accs else None,
        "iters_run": o.iters_run,
        "diverged_at_iter": o.diverged_at_iter,
        "train_s": o.train_s,
        "total_s": o.train_s + o.eval_s,
        "benchmark_s": at("train_s") if reached else o.train_s,
        "hyperparams": {**hp.describe(), "max_iters": max_iters,
                        "stop_at_target": stop_at_target},
        "dataset_info": ds.info,
        "curve": o.curve,
        "timing": {
            "clock": "time.perf_counter" + (", torch.cuda.synchronize() at every interval end"
                                            if case.device == "cuda" else ""),
            "train_s": "the training steps only: batch gather from device tensors, forward, "
                       "loss, backward, optimizer step, lr update and on-device loss/accuracy "
                       "sums; the clock stops for every evaluation",
            "total_s": "train_s plus the test-set evaluations",
            "excluded": "dataset loading, model build, process start-up",
            "benchmark_s": "train_s_to_target when reached, else the train seconds run",
            "resolution": f"time/iterations to target are read at evaluations, every "
                          f"{hp.eval_every} iterations",
            "setup_s": setup_s,
            "first_interval_s": o.first_interval_s,
            "compile": ("included in the first interval's train seconds"
                        if case.compile == "compile" else None),
            "threads": torch.get_num_threads(),
            "flush_denormal": settings.flush_denormal,
            "cudnn_benchmark": settings.cudnn_benchmark,
        },
    }


def run_id(case: Case, dataset: str, seed: int) -> str:
    """Names one run (a case on a dataset with a seed): file names and test ids."""
    return f"{case.id}-{dataset}-seed{seed}"


def benchmark_seconds(result: dict) -> float:
    """The single timed "round" a run gives pytest-benchmark (see ``timing.benchmark_s``)."""
    return result["benchmark_s"]


# --- repeats over seeds ------------------------------------------------------------------

SUMMARY_METRICS = ("iters_to_target", "samples_to_target", "train_s_to_target",
                   "total_s_to_target")


def summarize(results: list[dict]) -> list[dict]:
    """One row per (case, dataset, target): median, quartiles and range over the seeds.

    A run that did not reach the target (budget spent or diverged) counts as infinitely
    slow: it is ranked after every run that did, so it can pull the median to "not
    reached" (``None``) but is never dropped. ``n_reached`` says how many runs count."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["case_id"], r["dataset"], r["target_acc"]), []).append(r)
    rows = []
    for (case_id, dataset, target), runs in groups.items():
        row = {"case_id": case_id, "model": runs[0]["model"], "dataset": dataset,
               "target_acc": target, "seeds": [r["seed"] for r in runs], "n_runs": len(runs),
               "n_reached": sum(r["status"] == "reached" for r in runs),
               "n_diverged": sum(r["status"] == "diverged" for r in runs)}
        for metric in SUMMARY_METRICS:
            values = sorted(math.inf if r[metric] is None else r[metric] for r in runs)
            for name, q in (("min", 0.0), ("q1", 0.25), ("median", 0.5), ("q3", 0.75),
                            ("max", 1.0)):
                v = _quantile(values, q)
                row[f"{metric}_{name}"] = None if math.isinf(v) else v
        row["best_acc_median"] = _quantile(sorted(r["best_acc"] or 0.0 for r in runs), 0.5)
        rows.append(row)
    return rows


def _quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile of sorted ``values`` that lets ``inf`` mean "slowest"."""
    pos = q * (len(values) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    if lo == hi or values[lo] == values[hi]:
        return values[lo]
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)  # inf if values[hi] is


# --- shipped experiments -----------------------------------------------------------------

class Trial(NamedTuple):
    """One planned run: what the pytest suite parametrizes over."""

    case: Case
    dataset: str
    target_acc: float
    seed: int
    max_iters: int
    stop_at_target: bool = True

    @property
    def id(self) -> str:
        return run_id(self.case, self.dataset, self.seed)


def run_trial(trial: Trial, **kwargs) -> dict:
    """``run`` with a ``Trial``'s arguments (``kwargs``: data_root, threads, progress...)."""
    return run(trial.case, trial.dataset, trial.target_acc, trial.seed, trial.max_iters,
               stop_at_target=trial.stop_at_target, **kwargs)


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
    # He et al. 2015 Fig. 6: the deeper plain net trains worse, the deeper ResNet better.
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


def trials(preset: str = "quick", experiment: str | None = None,
           device: str | None = None) -> list[Trial]:
    """Every run of ``experiment`` (default: all) in ``preset``, model-major then seed."""
    if preset not in PRESET_SEEDS:
        raise UserError(f"unknown preset {preset!r} (presets: {', '.join(PRESET_SEEDS)})")
    names = [experiment] if experiment else list(EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise UserError(f"unknown experiment {unknown[0]!r} "
                        f"(experiments: {', '.join(EXPERIMENTS)})")
    out = []
    for name in names:
        spec = EXPERIMENTS[name][preset]
        for model, (shape, batch) in spec["models"].items():
            case = Case(model, "train", device or PRESET_DEVICE[preset], batch_size=batch,
                        input_shape=shape)
            out += [Trial(case, spec["dataset"], spec["target_acc"], seed, spec["max_iters"],
                          spec["stop_at_target"]) for seed in PRESET_SEEDS[preset]]
    return out
