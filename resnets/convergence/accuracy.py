"""The accuracy cost of what users ship: one set of trained weights evaluated in every form.

A model is trained as its convergence experiment trains it (``presets.EXPERIMENTS``: the
LeNets by ``bn``, the CIFAR ResNets by ``degradation``, on the experiment's data and input
size, with the experiment's protocol and seed), for the experiment's whole iteration
budget (or ``iters``), on CPU. The same weights are then evaluated on the test set as
each form of ``FORMS``, built by the code the speed cases time (``measure.deploy``):

* ``fp32``: the eager model, the reference;
* ``bf16``: the eager model under ``torch.autocast`` (bf16);
* ``int8``: PT2E post-training quantization (X86InductorQuantizer), calibrated on
  ``CALIBRATION_BATCHES`` training batches drawn by a seeded permutation, compiled by
  Inductor with freezing (the int8 kernels the ``int8`` speed case times);
* ``export-aoti``: the fp32 model exported and packaged by AOTInductor, loaded back.

Exported and compiled graphs take one static batch (``EVAL_BATCH``); the test set is cut
into batches of it, the last padded with zeros and its padding's predictions dropped.
Per form: test accuracy, top-1 agreement with fp32's predictions, and the change from
fp32 in percentage points. ``write`` stores them as ``accuracy.json`` (the format
``report.accuracy`` reads), ``accuracy.csv`` and ``accuracy.md``.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from .. import data as datasets
from ..case import Case
from ..errors import UserError
from ..presets import EXPERIMENTS
from ..report.accuracy import ACCURACY_FILE, FORMAT, FORMS, VERSION, accuracy_table
from .protocol import default_hyperparams

EVAL_BATCH = 50
CALIBRATION_BATCHES = 8
# Each form as a case variant (memory format, precision, compile) evaluated in inference.
FORM_VARIANTS = {"fp32": ("contiguous", "fp32", "eager"), "bf16": ("contiguous", "bf16", "eager"),
                 "int8": ("contiguous", "int8", "compile"),
                 "export-aoti": ("contiguous", "fp32", "export-aoti")}
MODELS = ("lenet", "lenet_bn", "resnet20")   # what the digits experiments train


@dataclass(frozen=True)
class Recipe:
    """How a convergence experiment trains ``case``'s model on ``dataset``."""

    experiment: str
    case: Case
    dataset: str
    max_iters: int
    protocol: tuple


def recipe(model: str, dataset: str = "digits") -> Recipe:
    """The first experiment (quick, then full) that trains ``model`` on ``dataset``."""
    for preset in ("quick", "full"):
        for name, specs in EXPERIMENTS.items():
            spec = specs.get(preset)
            if spec and spec["dataset"] == dataset and model in spec["models"]:
                shape, batch = spec["models"][model]
                case = Case(model, "train", "cpu", batch_size=batch, input_shape=shape)
                return Recipe(name, case, dataset, spec["max_iters"], spec.get("protocol", ()))
    trained = sorted({m for specs in EXPERIMENTS.values() for s in specs.values()
                      if s["dataset"] == dataset for m in s["models"]})
    raise UserError(f"no convergence experiment trains {model} on {dataset} (models trained "
                    f"on {dataset}: {', '.join(trained) or 'none'})")


def train(r: Recipe, seed: int, iters: int | None = None, data_root=None):
    """(the trained model in eval mode, the dataset, iterations run): the experiment's
    protocol for its whole budget (``iters`` to shorten it)."""
    from ..measure.workload import math_mode
    from .trainer import _Trainer

    hp = replace(default_hyperparams(r.case.model), batch_size=r.case.batch_size,
                 **dict(r.protocol))
    ds = datasets.load(r.dataset, r.case.input_shape, "cpu", data_root, normalize=hp.normalize)
    budget = iters or r.max_iters
    with math_mode(r.case):
        trainer = _Trainer(r.case, ds, hp, seed, budget)
        done = trainer.train(target_acc=1.0, stop_at_target=False, progress=None)
    return trainer.model.eval(), ds, done.iters_run


def form_case(model: str, shape, form: str) -> Case:
    fmt, precision, compile_ = FORM_VARIANTS[form]
    return Case(model, "infer", "cpu", fmt, precision, compile_, EVAL_BATCH, tuple(shape))


def _batches(x, batch: int):
    """``x`` cut into batches of exactly ``batch`` (the last zero-padded), with how many
    rows of each are real."""
    import torch

    for start in range(0, len(x), batch):
        part = x[start:start + batch]
        real = len(part)
        if real < batch:
            part = torch.cat([part, part.new_zeros(batch - real, *part.shape[1:])])
        yield part, real


def predict(runner, x, case: Case):
    """Top-1 predictions of ``runner`` on ``x``, in the case's precision and batch."""
    import torch

    from ..measure.workload import autocast

    out = []
    with torch.inference_mode(), autocast(case):
        for part, real in _batches(x, case.batch_size):
            out.append(runner(part)[:real].argmax(1))
    return torch.cat(out)


def runner_for(model, case: Case, calibration: list) -> object:
    """What evaluates ``case``'s form: the model itself, or its shipped build."""
    import torch

    from ..measure.deploy import deploy

    if case.compile == "eager" and case.precision != "int8":
        return model
    return deploy(model, calibration[0], case.compile, case.precision, calibration,
                  f"{len(calibration)} training batches of {case.batch_size}",
                  torch.compile).runner


def calibration_set(ds, seed: int, n: int = CALIBRATION_BATCHES, batch: int = EVAL_BATCH):
    """``n`` training batches drawn by a permutation seeded with ``seed``."""
    import torch

    order = torch.randperm(len(ds.train_y), generator=torch.Generator().manual_seed(seed))
    return [ds.train_x[order[i * batch:(i + 1) * batch]] for i in range(n)]


def evaluate(model, model_name: str, ds, seed: int, forms: Iterable[str] = FORMS, *,
             dataset: str, iters: int, skipped: list | None = None) -> list[dict]:
    """One row per form of ``forms`` that can run here for ``model`` (registered as
    ``model_name``), trained for ``iters``; fp32 is always evaluated, as the reference.
    A form that cannot run here, or fails to build or run (a quantizer that refuses the
    model, say), goes to ``skipped`` as (model, form, why), and the others go on."""
    from ..measure.workload import math_mode, runtime_skip_reason

    shape = tuple(ds.test_x.shape[1:])
    calibration = calibration_set(ds, seed)
    reference = None
    rows = []
    for form in ["fp32", *(f for f in forms if f != "fp32")]:
        case = form_case(model_name, shape, form)
        why = runtime_skip_reason(case)
        if not why:
            try:
                with math_mode(case):
                    preds = predict(runner_for(model, case, calibration), ds.test_x, case)
            except Exception as exc:
                if form == "fp32":
                    raise
                why = f"failed: {type(exc).__name__}: {str(exc).strip()[:300]}"
        if why:
            if skipped is not None:
                skipped.append((model_name, form, why))
            continue
        if reference is None:
            reference = preds
        n = len(ds.test_y)
        rows.append({"model": model_name, "dataset": dataset, "seed": seed, "form": form,
                     "variant": case.variant, "test_acc": int((preds == ds.test_y).sum()) / n,
                     "agreement": int((preds == reference).sum()) / n,
                     "delta_points": 0.0, "n_test": n, "iters_trained": iters})
    fp32 = rows[0]["test_acc"]
    for row in rows:
        row["delta_points"] = round((row["test_acc"] - fp32) * 100, 6)
    return rows


def measure(models: Iterable[str] = MODELS, seeds: Iterable[int] = (0,),
            dataset: str = "digits", forms: Iterable[str] = FORMS, iters: int | None = None,
            data_root=None, threads: int | None = None, progress=None) -> tuple[list, list]:
    """(rows, skipped) for every model and seed: train, then evaluate every form."""
    from ..measure.runner import Settings, release_memory

    Settings(threads=threads).apply()
    recipes = [recipe(m, dataset) for m in models]
    rows, skipped = [], []
    for r in recipes:
        for seed in seeds:
            t0 = time.perf_counter()
            model, ds, done = train(r, seed, iters, data_root)
            got = evaluate(model, r.case.model, ds, seed, forms, dataset=dataset, iters=done,
                           skipped=skipped)
            rows += got
            if progress is not None:
                progress(r, seed, got, time.perf_counter() - t0)
            del model
            release_memory()
    return rows, sorted(set(skipped))


def document(rows: list[dict], skipped: list, settings: dict) -> dict:
    """The ``accuracy.json`` document: format, version, rows, and how they were made."""
    from ..measure.env import environment

    try:
        import torchao
        torchao_version = torchao.__version__
    except ImportError:
        torchao_version = None
    env = environment()
    return {"format": FORMAT, "version": VERSION, "rows": rows,
            "skipped": [{"model": m, "form": f, "why": w} for m, f, w in skipped],
            "settings": {**settings, "eval_batch": EVAL_BATCH,
                         "calibration_batches": CALIBRATION_BATCHES},
            "env": {"torch": env.get("torch"), "torchao": torchao_version,
                    "cpu_model": env.get("cpu_model"), "threads": env.get("threads"),
                    "git_commit": env.get("git_commit")},
            "method": __doc__.split("\n\n", 1)[1].strip()}


def write(out: Path, doc: dict) -> pd.DataFrame:
    """``accuracy.json``, ``accuracy.csv`` and ``accuracy.md`` in ``out`` (atomically);
    returns the report's table of the rows."""
    from ..report.render import markdown_table
    from ..store import atomic_write_text
    from ..text import csv_frame

    out = Path(out)
    atomic_write_text(out / ACCURACY_FILE, json.dumps(doc, indent=1) + "\n")
    atomic_write_text(out / "accuracy.csv", csv_frame(pd.DataFrame(doc["rows"])).to_csv(
        index=False))
    table = accuracy_table(pd.DataFrame(doc["rows"]))
    atomic_write_text(out / "accuracy.md", markdown_table(table) + "\n")
    return table
