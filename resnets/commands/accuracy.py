"""Measure the accuracy cost of what users ship: train, then evaluate fp32, bf16, int8, AOTI.

Each model is trained as its convergence experiment trains it (the LeNets as in `bn`,
ResNet-20 as in `degradation`, on the bundled digits by default), once per seed, on CPU;
the same weights are then evaluated on the test set in fp32 (the reference), bf16
autocast, int8 (PT2E post-training quantization, calibrated on seeded training batches,
through Inductor) and as an AOTInductor package: test accuracy, top-1 agreement with
fp32 and the change in percentage points. Writes accuracy.json (what `resnets report`
and `resnets advise` read with --accuracy, or from a run folder holding it),
accuracy.csv and accuracy.md under -o DIR; prints the table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import options

DEFAULT_MODELS = "lenet,lenet_bn,resnet20"


FORMS = options.ACCURACY_FORMS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", type=options.model_names, default=DEFAULT_MODELS,
                   metavar="A,B", help=f"models to train and evaluate (default {DEFAULT_MODELS})")
    p.add_argument("--dataset", default="digits", type=options.one_of(options.DATASETS),
                   help="the data their convergence experiment trains them on (default digits)")
    p.add_argument("--seeds", type=options.non_negative_ints, default=(0,), metavar="A,B",
                   help="comma-separated seeds, one trained model each (default 0)")
    p.add_argument("--forms", type=options.some_of(FORMS), default=FORMS, metavar="A,B",
                   help=f"forms to evaluate besides fp32: {','.join(FORMS)} (default all)")
    p.add_argument("--iters", type=options.positive_int, metavar="N",
                   help="training iterations (default: the experiment's whole budget)")
    p.add_argument("--threads", type=options.positive_int, metavar="N",
                   help="CPU threads (default: all cores)")
    p.add_argument("--data-root", metavar="DIR", help="folder holding fashion-mnist/cifar10 "
                   "(default: $RESNETS_DATA, else ./data)")
    p.add_argument("-o", "--out", type=Path, metavar="DIR",
                   help="output folder (default reports/accuracy-<UTC timestamp>/)")


def main(args: argparse.Namespace) -> int:
    from ..convergence import accuracy
    from ..report.render import markdown_table
    from ..store import default_out

    models = args.models
    for model in models:  # every model's recipe first: a bad name costs no training
        accuracy.recipe(model, args.dataset)
    out = args.out or default_out("accuracy")

    def progress(recipe, seed, rows, seconds):
        shown = ", ".join(f"{r['form']} {r['test_acc']:.1%}" for r in rows)
        print(f"{recipe.case.model} seed {seed} ({recipe.experiment}, "
              f"{rows[0]['iters_trained']} iterations, {seconds:.0f} s): {shown}",
              file=sys.stderr)

    rows, skipped = accuracy.measure(models, args.seeds, args.dataset, args.forms, args.iters,
                                     args.data_root, args.threads, progress)
    doc = accuracy.document(rows, skipped, {"models": list(models), "seeds": list(args.seeds),
                                            "dataset": args.dataset, "iters": args.iters})
    table = accuracy.write(out, doc)
    print(markdown_table(table))
    for model, form, why in skipped:
        print(f"not evaluated: {model} {form}: {why}")
    print(f"\naccuracy table: {out / 'accuracy.json'}")
    return 0
