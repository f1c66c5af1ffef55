"""Every option of the suite and the commands, declared once.

``add_options(add, prefix, options)`` adds options through ``add``, which is pytest's
``group.addoption`` or argparse's ``add_argument`` (the pytest-benchmark pattern), with
``prefix`` ``"--bench-"`` for the pytest plugin and ``"--"`` for the commands. So
``pytest bench --bench-models X`` and ``resnets run --models X`` are one declaration: the
same parser, check, default and help. Values are checked where they are parsed (each
option's ``type``), so a bad one is a one-line usage error before anything is imported or
measured; the parsers in ``resnets.checks`` are the only place a kind of value is
validated, and the case matrix's options come from the dimensions of ``resnets.case``.

Names: a dimension of the case matrix is plural where a command takes a list
(``--memory-formats`` in ``run``, ``--bench-memory-formats`` in pytest) and singular
where it names one case (``--memory-format`` in ``profile`` and ``train``). Old
spellings stay accepted for one release and print a one-line deprecation notice.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .case import DIMENSIONS, MAX_BATCH, MAX_SIDE
from .checks import (  # noqa: F401  (the checks, for every option's type)
    Invalid,
    accuracy,
    bounded,
    endpoint,
    fraction,
    integer,
    items,
    model_name,
    model_names,
    non_negative_float,
    non_negative_int,
    non_negative_ints,
    non_negative_share,
    one_of,
    path,
    points,
    positive_float,
    positive_int,
    positive_ints,
    shape,
    shard,
    share,
    some_of,
)
from .errors import UserError
from .presets import DATASETS, EXPERIMENTS, PRESETS

# --- declarations ------------------------------------------------------------------------

class _Deprecated(argparse.Action):
    """An old spelling: stores like the new one (``new``) and says so on stderr."""

    new = ""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: {option_string} is deprecated and will be removed; use "
              f"{self.new}", file=sys.stderr)
        setattr(namespace, self.dest, True if self.nargs == 0 else values)


@dataclass(frozen=True)
class Option:
    """One option: ``name`` is its dest and, with dashes, its flag after the prefix."""

    name: str
    help: str
    type: Callable[[str], Any] | None = None
    default: Any = None
    flag: bool = False                       # a switch (store_true)
    negatable: bool = False                  # --x / --no-x
    metavar: str | None = None
    short: str | None = None                 # e.g. -o, commands only (pytest reserves them)
    old: tuple[str, ...] = ()                # deprecated spellings, after the prefix
    aliases: tuple[str, ...] = ()            # other accepted spellings, after the prefix
    text: Callable[[Any], str] | None = None  # a parsed value back to its command-line form
    kwargs: dict = field(default_factory=dict)

    @property
    def initial(self):
        """The value when the option is not given."""
        return bool(self.default) if self.flag else self.default

    def flags(self, prefix: str) -> list[str]:
        main = prefix + self.name.replace("_", "-")
        extra = [prefix + a for a in self.aliases]
        return ([self.short] if self.short and prefix == "--" else []) + [main, *extra]

    def dest(self, prefix: str) -> str:
        return (prefix.strip("-").replace("-", "_") + "_" if prefix != "--" else "") + self.name

    def argv(self, prefix: str, value) -> list[str]:
        """The command-line words that give ``value`` (to hand options on to pytest)."""
        flag = prefix + self.name.replace("_", "-")
        if self.flag:
            return [flag] if value else []
        if self.negatable:
            return [flag] if value else [f"--no-{flag[2:]}"]
        if value is None:
            return []
        if self.text is not None:
            return [flag, self.text(value)]
        text = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
        return [flag, text]


def add_options(add: Callable, prefix: str, options) -> None:
    """Add ``options`` through ``add`` (``group.addoption`` or ``add_argument``)."""
    for o in options:
        dest = o.dest(prefix)
        kw: dict[str, Any] = {"dest": dest, "help": o.help, **o.kwargs}
        if o.flag:
            kw.update(action="store_true", default=o.initial)
        elif o.negatable:
            kw.update(action=argparse.BooleanOptionalAction, default=o.default)
        else:
            kw.update(default=o.default, type=o.type,
                      metavar=o.metavar or o.name.split("_")[-1].upper())
        add(*o.flags(prefix), **kw)
        new = prefix + o.name.replace("_", "-")
        for old in o.old:
            action = type("Deprecated", (_Deprecated,), {"new": new})
            old_kw = {"dest": dest, "help": argparse.SUPPRESS, "action": action}
            old_kw.update({"nargs": 0} if o.flag else {"type": o.type, "metavar": kw["metavar"]})
            add(prefix + old, **old_kw)


def restore(options, stored: dict) -> dict[str, Any]:
    """Options saved as JSON (a run's ``run-options.json``), parsed again by each option's
    own check, so a damaged or hostile file is a ``UserError`` naming the option."""
    out = {}
    for o in options:
        if o.name not in stored:
            continue
        value = stored[o.name]
        if o.flag or o.negatable:
            if not isinstance(value, bool):
                raise UserError(f"{o.name}: expected true or false")
            out[o.name] = value
            continue
        if isinstance(value, list):
            value = tuple(value)
        if not isinstance(value, (str, int, float, tuple)) or isinstance(value, bool) or any(
                not isinstance(v, (str, int)) or isinstance(v, bool)
                for v in (value if isinstance(value, tuple) else ())):
            raise UserError(f"{o.name}: not a value this option takes")
        words = o.argv("--", value)
        try:
            out[o.name] = o.type(words[1]) if o.type else words[1]
        except Invalid as exc:
            raise UserError(f"{o.name}: {exc}") from None
    return out


def values(namespace, prefix: str, options) -> dict[str, Any]:
    """``{option name: value}`` of ``options`` from a parsed namespace (or pytest config:
    pass ``config.option``)."""
    return {o.name: getattr(namespace, o.dest(prefix)) for o in options}


# The case matrix, one list option per dimension of ``Case`` (``case.DIMENSIONS``): lists in
# `run` and pytest, one value in `profile` and `train`.
MATRIX = [
    Option("preset", "case matrix preset: quick (CPU, about 5 minutes), full (GPU runners, "
           "nightly), gate (GPU, pull requests), launch (GPU: small models in every "
           "compile mode and CUDA graphs) or reference (GPU: ResNet-18/50 at 224x224, the "
           "reference report's cases) (default quick)", one_of(tuple(PRESETS)), "quick"),
    *(Option(d.option, d.list_help(), d.list_parser(),
             **{"metavar": "A,B", **d.option_extra})
      for d in DIMENSIONS.values() if d.option),
    Option("global_batch", "strong scaling: this global batch split over the world size "
           "(default: the per-device batch stays fixed, weak scaling)", positive_int,
           metavar="N"),
]
TIMING = [
    Option("time_budget", "seconds of timed rounds per case (default: the preset's, 2 "
           "quick and gate, 10 full)", positive_float, metavar="S"),
    Option("rel_ci", "stop when the 95%% CI of the median is within +-this fraction "
           "(default 0.02)", fraction, 0.02, metavar="F"),
    Option("min_rounds", "minimum timed rounds per case (default 10)", positive_int, 10,
           metavar="N"),
    Option("threads", "CPU threads (default: all cores)", positive_int, metavar="N"),
    Option("no_flush_denormal", "keep denormal floats (slow on CPU)", flag=True),
    Option("unpaired", "time each variant of a case on its own, minutes apart from the "
           "others, not side by side with them in rotating blocks", flag=True),
    Option("oversubscribe", "allow more threads, or data-parallel ranks per node, than this "
           "machine has cores (refused otherwise: they would time the scheduler)", flag=True),
]
EXTRAS = [
    Option("isolate", "measure each case in a fresh subprocess", flag=True),
    Option("max_batch", "also find the largest batch that fits on CUDA, per case", flag=True),
    Option("profile_ops", "attach operator and layer profiles (separate, untimed steps)",
           flag=True),
    Option("no_energy", "skip the energy window (at least 2 s per case, where an NVML or RAPL "
           "counter can be read)", flag=True),
]
# Data-parallel cases on several machines (README, "Beyond one GPU").
NODES = [
    Option("nnodes", "machines a data-parallel case spans; every other node runs `resnets "
           "follow` on the same run folder, which they all share (default 1)", positive_int,
           1, metavar="N"),
    Option("rdzv_endpoint", "HOST:PORT of the torchrun rendezvous on the first node (needed "
           "with --nnodes above 1)", endpoint, metavar="HOST:PORT"),
]
CONVERGENCE = [
    Option("convergence", "run the convergence (time-to-accuracy) benchmarks (default: "
           "yes)", negatable=True, default=True),
    Option("experiments", "comma-separated convergence experiments (default: all)",
           some_of(tuple(EXPERIMENTS)), metavar="A,B"),
    Option("dataset", "dataset for every convergence run (default: each experiment's)",
           one_of(DATASETS)),
    Option("data_root", "folder holding fashion-mnist/cifar10 (default $RESNETS_DATA or "
           "./data)", metavar="DIR"),
    Option("download", "download missing datasets into the data root", flag=True),
]
PLAN = [
    Option("shard", "run only shard K of N (1-based): the selection split into N parts "
           "of about equal estimated time, the same on every machine", shard, metavar="K/N",
           text=lambda v: f"{v[0]}/{v[1]}"),
    Option("estimate_from", "earlier results (file, folder or glob) whose case times "
           "estimate this run's (for --shard and --dry-run; default: a cost model)",
           metavar="RESULTS"),
]
OUT = Option("out", "run folder for per-case results (default reports/<run-id>)",
             type=lambda t: str(path(t)), metavar="DIR", short="-o")
# Given when a run is resumed, not part of what the run was asked for.
RETRY_CRASHED = Option("retry_crashed", "measure again the cases whose process died while "
                       "they ran (recorded as crashed; by default they are not retried)",
                       flag=True)
# `resnets run` plans once and hands the plan to the pytest child it starts.
PLAN_FILE = Option("plan", "internal: the run's plan, written by resnets run", metavar="FILE",
                   kwargs={"help": argparse.SUPPRESS})
# What the pytest plugin declares (as --bench-*) and `resnets run` hands on to it.
SUITE = [*MATRIX, *TIMING, *EXTRAS, *NODES, *CONVERGENCE, *PLAN, OUT]


def case_options(batch_default: int | None, batch_help: str) -> list[Option]:
    """One case, for ``profile`` and ``train``: the singular of each dimension."""
    return [
        *(Option(name, f"{', '.join(d.choices)} (default: {d.default})", one_of(d.choices),
                 d.default, metavar=name.split("_")[-1].upper())
          for name, d in DIMENSIONS.items() if d.one),
        Option("batch_size", batch_help, bounded(1, MAX_BATCH), batch_default, metavar="N"),
        Option("input_shape", "C,H,W of the input (default: the model's own, see "
               "`resnets models`)", lambda t: shape(t, MAX_SIDE), metavar="C,H,W"),
        Option("threads", "CPU threads (default: all cores)", positive_int, metavar="N"),
    ]


# Every reader of result files: a damaged file in a folder or glob is skipped with a
# warning, or with this refused.
STRICT = Option("strict", "refuse a damaged result file in a folder or glob instead of "
                "skipping it with a warning", flag=True)

# `resnets compare` and `resnets history` judge changes the same way.
GATE = [
    Option("threshold", "smallest change that counts: 5%% or 0.05 (default 5%%)", share,
           0.05, metavar="F"),
    Option("alpha", "significance level (default 0.01)", fraction, 0.01, metavar="A"),
]


# `resnets report` and `resnets advise` read the accuracy cost of what users ship
# (``resnets accuracy``'s tables; ``report.accuracy``): the forms it evaluates, fp32 the
# reference, and how far below fp32 a recommendation may fall.
ACCURACY_FORMS = ("fp32", "bf16", "int8", "export-aoti")
MAX_ACCURACY_DROP = 1.0
ACCURACY = [
    Option("accuracy", "accuracy tables (resnets accuracy's accuracy.json, or its folder); "
           "repeatable; a RESULTS folder holding accuracy.json is read anyway",
           metavar="FILE|DIR", kwargs={"action": "append"}),
    Option("max_accuracy_drop", "recommend nothing whose measured test accuracy is more than "
           f"this many percentage points below fp32 (default {MAX_ACCURACY_DROP:g})", points,
           MAX_ACCURACY_DROP, metavar="POINTS"),
]
