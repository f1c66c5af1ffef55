"""One convergence run: train a fresh, seeded model until a test accuracy is reached.

The dataset is held as device tensors (``resnets.data``); the test accuracy is evaluated
at the protocol's evaluation points (``HyperParams.eval_points``) until the target is
reached, the loss turns NaN/inf ("diverged", recorded, never raised) or the iteration
budget is spent. Timing follows airbench / hlb-CIFAR10: ``train_s`` counts only the
training steps (the clock stops, after a device synchronize, for every evaluation),
``total_s`` adds the evaluations; data loading and model building come before the clock
starts. Time and iterations to target are a bracket: the first evaluation at or above
the target, the last one below it (``*_low``), and a linear interpolation of accuracy
between the two (``*_interp``).

Batches: each epoch is a permutation of the training set drawn from a generator seeded
with the run's seed (or the file order, with ``shuffle`` off), cut into full batches (the
last partial one dropped, so BatchNorm always sees ``batch_size`` samples). The model's
weights come from ``torch.manual_seed`` with the same seed, so on CPU the same seed gives
the same curve.

Two training errors, both in the curve: ``train_acc`` is the running accuracy over the
interval's training batches (in train mode, as the weights changed; accumulated on the
device, so no synchronization per step), ``train_eval_acc`` the accuracy of the model in
eval mode on a fixed subset of ``TRAIN_EVAL_SUBSET`` training images, at each evaluation
(what He et al.'s Fig. 6 plots as training error is closer to the latter).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .. import data as datasets
from ..case import Case
from ..errors import UserError
from ..presets import Trial
from ..schema import ConvergenceResult, Env, Status, Timing
from .protocol import HyperParams, default_hyperparams

CURVE_KEYS = ("iters", "test_acc", "train_loss", "train_acc", "train_eval_acc", "train_s",
              "total_s")
EVAL_BATCH = 1000  # images per forward pass when evaluating
TRAIN_EVAL_SUBSET = 1000  # training images the eval-mode training error is measured on


def run(case: Case, dataset: str, target_acc: float, seed: int = 0, max_iters: int = 1000,
        eval_every: int | None = None, *, hp: HyperParams | None = None,
        stop_at_target: bool = True, data_root=None, download: bool = False,
        threads: int | None = None, threads_reason: str | None = None,
        experiment: str | None = None,
        progress: Callable[[dict], None] | None = None) -> ConvergenceResult:
    """Train ``case`` (mode "train") on ``dataset`` until ``target_acc``.

    ``hp`` defaults to ``default_hyperparams(case.model)`` with the case's batch size.
    ``stop_at_target=False`` keeps training to ``max_iters`` (for whole curves).
    ``progress`` is called with the latest curve point after every evaluation.
    ``threads_reason`` says why ``threads`` (the suite chooses them from the free cores).
    Raises ``UserError`` for bad arguments or missing data; never for a diverging run."""
    from ..measure.allocator import keep_warm
    from ..measure.env import environment
    from ..measure.runner import Settings, release_memory
    from ..measure.workload import check_input_shape, math_mode, runtime_skip_reason

    _check(case, target_acc, max_iters)
    check_input_shape(case)
    reason = runtime_skip_reason(case)
    if reason:
        raise UserError(f"{case.id} cannot run here: {reason}")
    hp = replace(hp or default_hyperparams(case.model), batch_size=case.batch_size)
    if eval_every is not None:
        hp = replace(hp, eval_every=int(eval_every))
    if hp.eval_every is not None and hp.eval_every < 1:
        raise UserError(f"the evaluation interval must be >= 1 iteration, not {hp.eval_every}")
    settings = Settings(threads=threads)
    settings.apply()
    t0 = time.perf_counter()
    ds = datasets.load(dataset, case.input_shape, case.device, data_root, download,
                       normalize=hp.normalize)
    if case.batch_size > len(ds.train_y):
        raise UserError(f"batch size {case.batch_size} is larger than the {dataset} "
                        f"training set ({len(ds.train_y)} images)")
    trainer = None
    try:
        with math_mode(case):
            trainer = _Trainer(case, ds, hp, seed, max_iters)
            setup_s = time.perf_counter() - t0
            outcome = trainer.train(target_acc, stop_at_target, progress)
            env = environment()
    finally:
        del trainer
        release_memory()
    timing = Timing(
        method="train_s: the training steps only (batch gather from device tensors, "
               "forward, loss, backward, optimizer step, lr update, on-device loss/accuracy "
               "sums); total_s adds the test-set evaluations",
        clock="time.perf_counter" + (", torch.cuda.synchronize() at every interval end"
                                     if case.device == "cuda" else ""),
        rounds=1, first_step_s=outcome.first_interval_s, setup_s=setup_s, wall_s=outcome.train_s,
        excluded="dataset loading, model build, process start-up and (in train_s) "
                 "evaluations",
        resolution=("time/iterations to target: bracketed by the evaluations around it, "
                    + (f"every {hp.eval_every} iterations" if hp.eval_every else
                       "every 5 iterations to 100, then 25% further apart")),
        threads=outcome.threads, threads_reason=threads_reason,
        allocator=keep_warm(), flush_denormal=settings.flush_denormal,
        cudnn_benchmark=settings.cudnn_benchmark, seed=seed, case_s=time.perf_counter() - t0)
    return _record(case, dataset, target_acc, seed, max_iters, hp, ds, outcome, timing,
                   Env(**env), stop_at_target, experiment)


def run_trial(trial: Trial, **kwargs) -> ConvergenceResult:
    """``run`` with a ``Trial``'s arguments (``kwargs``: data_root, threads, progress...)."""
    hp = replace(default_hyperparams(trial.case.model), **dict(trial.protocol))
    return run(trial.case, trial.dataset, trial.target_acc, trial.seed, trial.max_iters,
               stop_at_target=trial.stop_at_target, hp=hp, experiment=trial.experiment,
               **kwargs)


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
    threads: int | None = None


class _Trainer:
    """The model, optimizer and batch order of one run, and the timed loop."""

    def __init__(self, case: Case, ds, hp: HyperParams, seed: int, max_iters: int):
        import torch

        from ..measure.device import synchronizer
        from ..measure.workload import build_model, compiled, make_optimizer, memory_format

        self.torch = torch
        self.case, self.ds, self.hp, self.max_iters = case, ds, hp, max_iters
        self.fmt = memory_format(case)
        self.sync = synchronizer(case.device)
        torch.manual_seed(seed)
        self.model = build_model(case, num_classes=ds.num_classes)
        self.runner = compiled(case, self.model)
        self.optimizer, self.scaler = make_optimizer(case, self.model, hp.lr, hp.momentum,
                                                     hp.weight_decay)
        self.order = torch.Generator().manual_seed(seed)
        self.batches: list = []

    def _next_batch(self):
        """The next batch's indices: a fresh seeded permutation per epoch (or the file
        order, with ``shuffle`` off), full batches."""
        if not self.batches:
            n, b = len(self.ds.train_y), self.case.batch_size
            perm = (self.torch.randperm(n, generator=self.order) if self.hp.shuffle
                    else self.torch.arange(n)).to(self.case.device)
            self.batches = list(perm[: n - n % b].split(b))[::-1]
        return self.batches.pop()

    def _step(self, it: int, sums) -> None:
        from ..measure.workload import train_step

        idx = self._next_batch()
        x = self.ds.train_x[idx].contiguous(memory_format=self.fmt)
        y = self.ds.train_y[idx]
        for group in self.optimizer.param_groups:
            group["lr"] = self.hp.lr_at(it, self.max_iters)
        loss, out = train_step(self.case, self.runner, self.optimizer, self.scaler, x, y)
        sums[0] += loss.detach().float()
        sums[1] += (out.detach().argmax(1) == y).sum()

    def evaluate(self, x_all, y_all) -> float:
        """Accuracy of the model in eval mode on ``x_all``; train mode is restored."""
        from ..measure.workload import autocast

        torch = self.torch
        self.model.eval()
        correct = torch.zeros((), dtype=torch.long, device=self.case.device)
        with torch.no_grad(), autocast(self.case):
            for x, y in zip(x_all.split(EVAL_BATCH), y_all.split(EVAL_BATCH)):
                correct += (self.runner(x.contiguous(memory_format=self.fmt)).argmax(1) == y).sum()
        self.model.train()
        return correct.item() / len(y_all)

    def train(self, target_acc: float, stop_at_target: bool, progress) -> _Outcome:
        torch, clock = self.torch, time.perf_counter
        o = _Outcome(threads=torch.get_num_threads())
        subset = (self.ds.train_x[:TRAIN_EVAL_SUBSET], self.ds.train_y[:TRAIN_EVAL_SUBSET])
        for point_at in self.hp.eval_points(self.max_iters):
            n = point_at - o.iters_run
            sums = [torch.zeros((), device=self.case.device) for _ in range(2)]
            self.sync()
            start = clock()
            for i in range(o.iters_run, point_at):
                self._step(i, sums)
            self.sync()
            interval = clock() - start
            o.train_s += interval
            o.first_interval_s = interval if o.first_interval_s is None else o.first_interval_s
            o.iters_run = point_at
            train_loss = sums[0].item() / n
            if not math.isfinite(train_loss):
                o.diverged_at_iter = o.iters_run
                break
            start = clock()
            test_acc = self.evaluate(self.ds.test_x, self.ds.test_y)
            train_eval_acc = self.evaluate(*subset)
            o.eval_s += clock() - start
            point = {"iters": o.iters_run, "test_acc": test_acc, "train_loss": train_loss,
                     "train_acc": sums[1].item() / (n * self.case.batch_size),
                     "train_eval_acc": train_eval_acc,
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


def bracket(curve: dict, at: int, target: float, key: str) -> tuple[float, float]:
    """(``key`` at the last evaluation below the target, linear interpolation of accuracy
    to the target between that evaluation and the first at or above it, index ``at``).
    Before the first evaluation the "last below" is the start: 0 iterations, 0 seconds,
    at an accuracy of 0."""
    hi_x, hi_acc = curve[key][at], curve["test_acc"][at]
    lo_x, lo_acc = (curve[key][at - 1], curve["test_acc"][at - 1]) if at else (0.0, 0.0)
    share = (target - lo_acc) / (hi_acc - lo_acc) if hi_acc > lo_acc else 1.0
    return lo_x, lo_x + min(1.0, max(0.0, share)) * (hi_x - lo_x)


def _record(case, dataset, target_acc, seed, max_iters, hp, ds, o: _Outcome, timing,
            env, stop_at_target, experiment) -> ConvergenceResult:
    reached = o.reached_at is not None
    at = (lambda k: o.curve[k][o.reached_at]) if reached else (lambda k: None)
    brackets = {}
    if reached:
        for key, name in (("iters", "iters_to_target"), ("train_s", "train_s_to_target")):
            brackets[f"{name}_low"], brackets[f"{name}_interp"] = bracket(
                o.curve, o.reached_at, target_acc, key)
    status = (Status.REACHED if reached else Status.DIVERGED if o.diverged_at_iter
              else Status.NOT_REACHED)
    accs = o.curve["test_acc"]
    result = ConvergenceResult(
        case=case, status=status, timing=timing, env=env, dataset=dataset,
        target_acc=target_acc, seed=seed, max_iters=max_iters,
        iters_to_target=at("iters"),
        samples_to_target=at("iters") * case.batch_size if reached else None,
        train_s_to_target=at("train_s"), total_s_to_target=at("total_s"),
        best_acc=max(accs) if accs else None, final_acc=accs[-1] if accs else None,
        iters_run=o.iters_run, diverged_at_iter=o.diverged_at_iter, train_s=o.train_s,
        total_s=o.train_s + o.eval_s, experiment=experiment,
        epochs_run=o.iters_run * case.batch_size / len(ds.train_y), **brackets,
        hyperparams={**hp.to_dict(), "max_iters": max_iters, "stop_at_target": stop_at_target},
        dataset_info=ds.info, curve=o.curve)
    result.samples = [result.benchmark_s]
    return result
