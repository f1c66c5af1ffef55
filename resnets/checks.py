"""Parsers of command-line values: each takes one string and returns the checked value or
raises ``Invalid`` (argparse's ``ArgumentTypeError``, so a bad value is a one-line usage
error before anything is imported or measured). Torch-free and dependency-free: the case
dimensions (``resnets.case``) and every option (``resnets.options``) declare their values
with these, so a kind of value is validated in one place.
"""
from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

Invalid = argparse.ArgumentTypeError

# Whole numbers a command line may give: beyond this no count, size or seed here is
# meaningful, and Python's ints would otherwise reach torch or JSON unbounded.
MAX_INT = 2 ** 31 - 1


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


def model_name(text: str) -> str:
    from .models import names  # imports torch: only when a model name is given
    from .models.registry import unknown_model_message

    known = names()
    if text not in known:
        raise Invalid(unknown_model_message(text, known))
    return text


def model_names(text: str) -> tuple[str, ...]:
    return tuple(model_name(v) for v in items(text))


def finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise Invalid(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise Invalid(f"must be a finite number, not {text!r}")
    return value


def integer(text: str, low: int = -MAX_INT, high: int = MAX_INT) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise Invalid(f"not an integer: {text!r}") from None
    if value < low:
        raise Invalid(f"must be >= {low}, not {value}")
    if value > high:
        raise Invalid(f"must be <= {high:,}, not {value}")
    return value


def bounded(low: int, high: int) -> Callable[[str], int]:
    """An integer in ``[low, high]``."""
    return lambda text: integer(text, low, high)


def positive_int(text: str) -> int:
    return integer(text, 1)


def non_negative_int(text: str) -> int:
    return integer(text, 0)


def positive_ints(text: str) -> tuple[int, ...]:
    return tuple(positive_int(v) for v in items(text))


def non_negative_ints(text: str) -> tuple[int, ...]:
    return tuple(non_negative_int(v) for v in items(text))


def ints_in(low: int, high: int) -> Callable[[str], tuple[int, ...]]:
    """Comma-separated integers, each in ``[low, high]``."""
    return lambda text: tuple(integer(v, low, high) for v in items(text))


def positive_float(text: str) -> float:
    value = finite(text)
    if value <= 0:
        raise Invalid(f"must be > 0, not {text}")
    return value


def non_negative_float(text: str) -> float:
    value = finite(text)
    if value < 0:
        raise Invalid(f"must be >= 0, not {text}")
    return value


def points(text: str) -> float:
    """Percentage points of accuracy, 0 to 100 (``1`` is one point: 91% -> 90%)."""
    value = finite(text)
    if not 0 <= value <= 100:
        raise Invalid(f"must be between 0 and 100 percentage points, not {text}")
    return value


def fraction(text: str) -> float:
    """A probability-like number in (0, 1)."""
    value = finite(text)
    if not 0 < value < 1:
        raise Invalid(f"must be between 0 and 1, not {text}")
    return value


def accuracy(text: str) -> float:
    """A target accuracy in (0, 1]."""
    value = finite(text)
    if not 0 < value <= 1:
        raise Invalid(f"must be in (0, 1], not {text}")
    return value


def share(text: str) -> float:
    """A relative size, ``5%`` or ``0.05``. A bare number >= 1 is refused: ``5`` would
    mean 500% and silently switch a gate off."""
    text = str(text).strip()
    if text.endswith("%"):
        value = finite(text[:-1]) / 100
    else:
        value = finite(text)
        if value >= 1:
            raise Invalid(f"{text} would mean {value:.0%}; write {text}% or {value / 100:g}")
    if value <= 0:
        raise Invalid(f"must be > 0, not {text}")
    return value


def non_negative_share(text: str) -> float:
    """Like ``share`` but 0 is allowed (``--noise 0``)."""
    return 0.0 if str(text).strip() in ("0", "0%", "0.0") else share(text)


def shape(text: str, high: int = MAX_INT) -> tuple[int, int, int]:
    """``3x224x224`` or ``3,224,224``."""
    parts = re.split(r"[x,]", str(text).lower())
    if len(parts) != 3:
        raise Invalid(f"expected C,H,W such as 3x224x224, not {text!r}")
    return tuple(integer(p, 1, high) for p in parts)  # type: ignore[return-value]


def shard(text: str) -> tuple[int, int]:
    """``K/N``: the K-th of N shards, 1-based."""
    match = re.fullmatch(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*", str(text))
    if not match:
        raise Invalid(f"expected K/N such as 1/4, not {text!r}")
    k, n = int(match[1]), int(match[2])
    if not 1 <= k <= n:
        raise Invalid(f"K must be between 1 and N, not {text!r}")
    return k, n


def path(text: str):
    """A file or folder to write: not empty (``-o ''`` would silently mean the default)."""
    from pathlib import Path

    if not str(text).strip():
        raise Invalid("an empty path; give a file or folder")
    return Path(text)


def endpoint(text: str) -> str:
    """HOST:PORT of a torchrun rendezvous."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise Invalid(f"expected HOST:PORT such as node001:29500, not {text!r}")
    return str(text)
