"""Every option of the suite and the commands, declared once.

``add_options(add, prefix, options)`` adds options through ``add``, which is pytest's
``group.addoption`` or argparse's ``add_argument`` (the pytest-benchmark pattern), with
``prefix`` ``"--bench-"`` for the pytest plugin and ``"--"`` for the commands. So
``pytest bench --bench-models X`` and ``resnets run --models X`` are one declaration: the
same parser, check, default and help. Values are checked where they are parsed (each
option's ``type``), so a bad one is a one-line usage error before anything is imported or
measured; the check functions below are the only place a kind of value is validated.

Names: a dimension of the case matrix is plural where a command takes a list
(``--memory-formats`` in ``run``, ``--bench-memory-formats`` in pytest) and singular
where it names one case (``--memory-format`` in ``profile`` and ``train``). Old
spellings stay accepted for one release and print a one-line deprecation notice.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .case import CHOICES
from .data import NAMES as DATASETS
from .presets import EXPERIMENTS, PRESETS

# --- checks: each parses one command-line string or raises ArgumentTypeError ------------

Invalid = argparse.ArgumentTypeError


def items(text: str) -> tuple[str, ...]:
    """``"a, b,a"`` -> ``("a", "b")``: comma-separated, stripped, de-duplicated."""
    out = tuple(dict.fromkeys(v.strip() for v in str(text).split(",") if v.strip()))
    if not out:
        raise Invalid("needs at least one value")
    return out


def one_of(allowed: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise Invalid(f"invalid value {text!r} (valid: {', '.join(allowed)})")
        return text

    return parse


def some_of(allowed: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    check = one_of(allowed)

    def parse(text: str) -> tuple[str, ...]:
        return tuple(check(v) for v in items(text))

    return parse


def _model_names() -> list[str]:
    from . import models  # imports torch: only when a model name is given

    return models.names()


def model_name(text: str) -> str:
    from .models.registry import unknown_model_message

    known = _model_names()
    if text not in known:
        raise Invalid(unknown_model_message(text, known))
    return text


def model_names(text: str) -> tuple[str, ...]:
    return tuple(model_name(v) for v in items(text))


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise Invalid(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise Invalid(f"must be a finite number, not {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise Invalid(f"not an integer: {text!r}") from None


# Paired timing (``resnets gate``): adjacent block pairs below which a case has no
# evidence either way (``compare.significance.paired_blocks``), so --blocks needs this many.
MIN_BLOCK_PAIRS = 3


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise Invalid(f"must be >= 1, not {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise Invalid(f"must be >= 0, not {value}")
    return value


def positive_ints(text: str) -> tuple[int, ...]:
    return tuple(positive_int(v) for v in items(text))


def non_negative_ints(text: str) -> tuple[int, ...]:
    return tuple(non_negative_int(v) for v in items(text))


def positive_float(text: str) -> float:
    value = _finite(text)
    if value <= 0:
        raise Invalid(f"must be > 0, not {text}")
    return value


def fraction(text: str) -> float:
    """A probability-like number in (0, 1)."""
    value = _finite(text)
    if not 0 < value < 1:
        raise Invalid(f"must be between 0 and 1, not {text}")
    return value


def accuracy(text: str) -> float:
    """A target accuracy in (0, 1]."""
    value = _finite(text)
    if not 0 < value <= 1:
        raise Invalid(f"must be in (0, 1], not {text}")
    return value


def share(text: str) -> float:
    """A relative size, ``5%`` or ``0.05``. A bare number >= 1 is refused: ``5`` would
    mean 500% and silently switch a gate off."""
    text = str(text).strip()
    if text.endswith("%"):
        value = _finite(text[:-1]) / 100
    else:
        value = _finite(text)
        if value >= 1:
            raise Invalid(f"{text} would mean {value:.0%}; write {text}% or {value / 100:g}")
    if value <= 0:
        raise Invalid(f"must be > 0, not {text}")
    return value


def non_negative_share(text: str) -> float:
    """Like ``share`` but 0 is allowed (``--noise 0``)."""
    return 0.0 if str(text).strip() in ("0", "0%", "0.0") else share(text)


def batch_sizes(text: str):
    """Batch sizes, or ``auto``: a geometric sweep up to the largest batch that fits."""
    return "auto" if str(text).strip() == "auto" else positive_ints(text)


def shape(text: str) -> tuple[int, int, int]:
    """``3x224x224`` or ``3,224,224``."""
    parts = re.split(r"[x,]", str(text).lower())
    if len(parts) != 3:
        raise Invalid(f"expected C,H,W such as 3x224x224, not {text!r}")
    return tuple(positive_int(p) for p in parts)  # type: ignore[return-value]


def shard(text: str) -> tuple[int, int]:
    """``K/N``: the K-th of N shards, 1-based."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise Invalid(f"expected K/N such as 1/4, not {text!r}")
    k, n = int(match[1]), int(match[2])
    if not 1 <= k <= n:
        raise Invalid(f"K must be between 1 and N, not {text!r}")
    return k, n


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


def values(namespace, prefix: str, options) -> dict[str, Any]:
    """``{option name: value}`` of ``options`` from a parsed namespace (or pytest config:
    pass ``config.option``)."""
    return {o.name: getattr(namespace, o.dest(prefix)) for o in options}


# The case matrix. Lists in `run` and pytest, one value in `profile` and `train`.
DIMENSIONS = {
    "mode": CHOICES["mode"], "device": CHOICES["device"],
    "memory_format": CHOICES["memory_format"], "precision": CHOICES["precision"],
    "compile": CHOICES["compile"],
}
_PLURAL = {"mode": "modes", "device": "devices", "memory_format": "memory_formats",
           "precision": "precisions", "compile": "compile"}

MATRIX = [
    Option("preset", "case matrix preset: quick (CPU, about 5 minutes), full (GPU runners, "
           "nightly), gate (GPU, pull requests) or launch (GPU: small models in every "
           "compile mode and CUDA graphs) (default quick)", one_of(tuple(PRESETS)),
           "quick"),
    Option("models", "comma-separated models (default: the preset's)", model_names,
           metavar="A,B"),
    *(Option(_PLURAL[d], f"comma-separated: {','.join(c)} (default: the preset's)",
             some_of(c), metavar="A,B", old=("formats",) if d == "memory_format" else ())
      for d, c in DIMENSIONS.items()),
    Option("batch_sizes", "comma-separated batch sizes (per device), or auto: doubling up to "
           "the largest batch that fits, and the knee (default: per model in the preset)",
           batch_sizes, metavar="N,M|auto"),
    Option("image_sizes", "comma-separated square input sizes in pixels, e.g. 224,128 "
           "(default: per model in the preset)", positive_ints, metavar="N,M",
           aliases=("image-size",)),
    Option("input", "comma-separated: synthetic (tensors on the device) and/or real (image "
           "files through a DataLoader) (default synthetic)", some_of(CHOICES["input"]),
           metavar="A,B"),
    Option("loader_workers", "comma-separated DataLoader worker counts for real inputs "
           "(default 0: load in the training process)", non_negative_ints, metavar="N,M"),
    Option("world_sizes", "comma-separated world sizes of data-parallel cases, one process per "
           "device, under torchrun (default: single-process)", positive_ints, metavar="N,M"),
    Option("strategies", "comma-separated data-parallel strategies: ddp,fsdp (default ddp "
           "when --world-sizes is given)", some_of(("ddp", "fsdp")), metavar="A,B"),
    Option("global_batch", "strong scaling: this global batch split over the world size "
           "(default: the per-device batch stays fixed, weak scaling)", positive_int,
           metavar="N"),
    Option("bucket_mbs", "comma-separated DDP gradient bucket sizes in MiB (bucket_cap_mb) "
           "to compare (default: PyTorch's 25)", positive_ints, metavar="N,M"),
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
]
EXTRAS = [
    Option("isolate", "measure each case in a fresh subprocess", flag=True),
    Option("max_batch", "also find the largest batch that fits on CUDA, per case", flag=True),
    Option("profile_ops", "attach operator and layer profiles (separate, untimed steps)",
           flag=True),
]
def endpoint(text: str) -> str:
    """HOST:PORT of a torchrun rendezvous."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise Invalid(f"expected HOST:PORT such as node001:29500, not {text!r}")
    return str(text)


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
             metavar="DIR", short="-o")
# Given when a run is resumed, not part of what the run was asked for.
RETRY_CRASHED = Option("retry_crashed", "measure again the cases whose process died while "
                       "they ran (recorded as crashed; by default they are not retried)",
                       flag=True)
# What the pytest plugin declares (as --bench-*) and `resnets run` hands on to it.
SUITE = [*MATRIX, *TIMING, *EXTRAS, *NODES, *CONVERGENCE, *PLAN, OUT]


def case_options(batch_default: int | None, batch_help: str) -> list[Option]:
    """One case, for ``profile`` and ``train``: the singular of each dimension."""
    return [
        *(Option(d, f"{', '.join(c)} (default: {c[0]})", one_of(c), c[0],
                 metavar=d.split("_")[-1].upper()) for d, c in DIMENSIONS.items()),
        Option("batch_size", batch_help, positive_int, batch_default, metavar="N"),
        Option("input_shape", "C,H,W of the input (default: the model's own, see "
               "`resnets models`)", shape, metavar="C,H,W"),
        Option("threads", "CPU threads (default: all cores)", positive_int, metavar="N"),
    ]


# `resnets compare` and `resnets history` judge changes the same way.
GATE = [
    Option("threshold", "smallest change that counts: 5%% or 0.05 (default 5%%)", share,
           0.05, metavar="F"),
    Option("alpha", "significance level (default 0.01)", fraction, 0.01, metavar="A"),
]
