"""Whether two pyproject.toml files ask for the same dependencies.

``python -m resnets.deps BASE_PYPROJECT HEAD_PYPROJECT`` prints ``same`` or ``changed``
(and, on stderr, what changed) and exits 0; a file it cannot read exits 2 with one line.

The GPU gate workflow asks it how to time the merge-base against the head: with the same
dependencies, both from one environment in one process (the mode the gate was proven in:
``paired.py`` measured log-ratio sd 0.006-0.03 there, against 0.03-0.09 for one process
per side); otherwise each side gets its own environment, and so its own process.
Compared: ``[project] dependencies`` and each table of ``[project.optional-dependencies]``,
as sets of requirement strings, so order and repeats do not matter; any other difference
in a string counts, the safe direction (a false "changed" costs the gate precision, a
false "same" would time one side with the other's packages). Dependencies declared
``dynamic`` are not in the file, so they count as changed. Standard library only (and
``tomli`` before Python 3.11): it runs before any environment is installed.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .errors import UserError

try:
    import tomllib
except ImportError:  # Python 3.10
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None

TABLES = ("dependencies", "optional-dependencies")


class Dynamic(Exception):
    """The dependencies are declared ``dynamic``: the file does not say what they are."""


def requirements(path: Path) -> dict[str, frozenset[str]]:
    """``{"dependencies": {...}, "optional-dependencies.<extra>": {...}}`` of ``path``;
    raises ``UserError`` for a file that cannot be read or holds no such lists, and
    ``Dynamic`` when they are declared dynamic."""
    if tomllib is None:
        raise UserError("reading pyproject.toml needs Python >= 3.11 (tomllib) or the "
                        "tomli package")
    try:
        doc = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not TOML: {exc}") from None
    project = doc.get("project", {})
    dynamic = sorted(set(project.get("dynamic", [])) & set(TABLES))
    if dynamic:
        raise Dynamic(f"{path}: {', '.join(dynamic)} declared dynamic, not in the file")
    out = {"dependencies": _strings(path, "dependencies", project.get("dependencies", []))}
    extras = project.get("optional-dependencies", {})
    if not isinstance(extras, dict):
        raise UserError(f"{path}: [project.optional-dependencies] is not a table")
    for name, reqs in extras.items():
        out[f"optional-dependencies.{name}"] = _strings(path, name, reqs)
    return out


def _strings(path: Path, name: str, reqs) -> frozenset[str]:
    if not isinstance(reqs, list) or not all(isinstance(r, str) for r in reqs):
        raise UserError(f"{path}: {name} is not a list of requirement strings")
    return frozenset(reqs)


def differences(base: Path, head: Path) -> list[str]:
    """What differs between the two files' dependencies, one line per table (``-`` the
    base's only, ``+`` the head's only); [] when they are the same."""
    try:
        old, new = requirements(base), requirements(head)
    except Dynamic as exc:
        return [str(exc)]
    out = []
    for table in sorted(old.keys() | new.keys()):
        a, b = old.get(table, frozenset()), new.get(table, frozenset())
        if a != b:
            out.append(f"{table}: " + ", ".join([*(f"-{r}" for r in sorted(a - b)),
                                                 *(f"+{r}" for r in sorted(b - a))]))
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("resnets deps: error: usage: python -m resnets.deps BASE_PYPROJECT "
              "HEAD_PYPROJECT", file=sys.stderr)
        return UserError.exit_code
    try:
        changes = differences(Path(args[0]), Path(args[1]))
    except UserError as exc:
        print(f"resnets deps: error: {exc}", file=sys.stderr)
        return exc.exit_code
    for line in changes:
        print(line, file=sys.stderr)
    print("changed" if changes else "same")
    return 0


if __name__ == "__main__":
    sys.exit(main())
