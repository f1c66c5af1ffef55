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

import fnmatch
import glob
import json
import os
import re
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


MAX_FILES = 200_000   # files a folder or glob may yield before it is refused as not results


def walk(folder: Path, pattern: str = "*.json") -> list[Path]:
    """Regular files matching ``pattern`` below ``folder``, sorted, never following a
    symlink (so a link out of the folder is not read and a link loop cannot hang the
    walk); symlinks met are named in ``skipped_links`` for a warning."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        for name in filenames:
            path = Path(dirpath) / name
            if fnmatch.fnmatch(name, pattern) and not path.is_symlink():
                out.append(path)
                if len(out) > MAX_FILES:
                    raise FileRefused(f"{folder}: more than {MAX_FILES:,} files; not a results "
                                      "folder")
    return sorted(out)


def links(folder: Path) -> list[Path]:
    """The symlinks below ``folder`` (not followed): what ``walk`` leaves out."""
    return sorted(Path(d) / n for d, dirs, names in os.walk(folder, followlinks=False)
                  for n in [*dirs, *names] if (Path(d) / n).is_symlink())


def glob_paths(pattern: str) -> list[Path]:
    """``glob.glob(pattern, recursive=True)`` without following symlinked folders: ``**``
    is matched over ``os.walk`` (the standard glob follows them, and a loop such as
    ``cases/up -> ..`` made ``RUN/**`` run until the paths grew too long)."""
    if "**" not in pattern:
        return sorted(Path(m) for m in glob.glob(pattern))
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    root = Path(*parts[:fixed]) if fixed else Path(".")
    regex = re.compile(_translate(parts[fixed:]))
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # as glob: no hidden
        rel = Path(dirpath).relative_to(root)
        for name in ["", *dirnames, *(f for f in filenames if not f.startswith("."))]:
            path = rel / name if name else rel
            if regex.fullmatch(path.as_posix() if str(path) != "." else ""):
                out.append(root / path)
        if len(out) > MAX_FILES:
            raise FileRefused(f"{pattern}: matches more than {MAX_FILES:,} paths")
    return sorted(set(out))


def _translate(parts) -> str:
    """Path components of a glob as a regular expression over '/'-joined relative paths:
    ``**`` any number of components, ``*`` and ``?`` within one, ``[...]`` a class."""
    out = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:.*/)?")
            continue
        out.append(_component(part) + ("" if last else "/"))
    return "".join(out)


def _component(part: str) -> str:
    out, i = [], 0
    while i < len(part):
        c = part[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and "]" in part[i + 2:] or c == "[" and part[i + 1:i + 2] == "]":
            end = part.index("]", i + 2)
            body = part[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body)
                       .replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)
