"""Reading files that may be hostile: only regular files, of bounded size and nesting.

A run folder comes from anywhere (a CI artifact, a history branch, a colleague), so a
"result file" may be a symlink to a secret or into a loop, a FIFO that blocks a reader
forever, ``/dev/zero`` (size 0 on ``stat``, endless on read), or JSON nested 100,000
deep. ``read_bytes`` opens without blocking, refuses anything but a regular file, follows
a symlink only to a target inside ``within`` when given, and reads at most ``limit``
bytes however big the file says it is; ``read_json`` adds a nesting bound. Every refusal
is a ``FileRefused`` (a ``UserError``: one line naming the file). Torch- and pandas-free.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from .errors import UserError

MAX_BYTES = 256 * 2 ** 20   # a case file is a few hundred KiB
MAX_DEPTH = 64              # a record nests a few levels (profile tables: 4)


class FileRefused(UserError):
    """A file that is not a readable input, in one line that names it."""


def read_bytes(path: Path, limit: int = MAX_BYTES, within: Path | None = None) -> bytes:
    path = Path(path)
    if within is not None and path.is_symlink():
        target = Path(os.path.realpath(path))
        if not target.is_relative_to(Path(os.path.realpath(within))):
            raise FileRefused(f"{path}: a symlink out of {within}; not read")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise FileRefused(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileRefused(f"{path}: not a regular file (a FIFO, device or folder); not read")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise FileRefused(f"{path}: larger than {limit // 2 ** 20} MiB; not read")
        return b"".join(chunks)
    except OSError as exc:
        raise FileRefused(f"{path}: cannot read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def read_text(path: Path, limit: int = MAX_BYTES, within: Path | None = None) -> str:
    try:
        return read_bytes(path, limit, within).decode("utf-8")
    except UnicodeDecodeError:
        raise FileRefused(f"{path}: not text (binary or not UTF-8)") from None


def depth(value, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of a parsed JSON value, counted without recursion; stops past
    ``limit``."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            todo += [(x, d + 1) for x in (v.values() if isinstance(v, dict) else v)]
    return deepest


def parse_json(text: str, where: Path | str, limit: int = MAX_DEPTH):
    """JSON with its nesting bounded; ``FileRefused`` for anything else."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise FileRefused(f"{where}: JSON nested too deep; not a resnets file") from None
    except ValueError as exc:
        raise FileRefused(f"{where}: not valid JSON, truncated or corrupt "
                          f"({str(exc)[:200]})") from None
    if depth(value, limit) > limit:
        raise FileRefused(f"{where}: JSON nested deeper than {limit} levels; not a resnets file")
    return value


def read_json(path: Path, limit: int = MAX_BYTES, within: Path | None = None):
    text = read_text(path, limit, within)
    if not text.strip():
        raise FileRefused(f"{path}: empty file")
    return parse_json(text, path)
