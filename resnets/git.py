"""git, run for the gate's worktrees and for publishing runs: a failure is one line.

Values from the user (a remote, a branch, a revision) never reach git where it could read
them as options: ``--upload-pack=...`` given as a branch once ran a shell command in
``git fetch``. So a branch name must pass ``git check-ref-format --branch``, a revision
and a remote must not start with ``-``, and callers put them after ``--`` (or
``--end-of-options`` where ``--`` would mean paths) all the same.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .errors import UserError

_FAILURE = re.compile(r"(?:fatal|error):", re.IGNORECASE)


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``git *args`` in ``cwd``; with ``check``, a non-zero exit raises ``UserError``
    naming the sub-command and giving git's ``reason``."""
    r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if check and r.returncode != 0:
        raise UserError(f"git {_command(args)}: {reason(r)}")
    return r


def reason(r: subprocess.CompletedProcess) -> str:
    """Why git failed, in its own words: its first ``fatal:``/``error:`` line. Its last
    line is often advice ("Please make sure you have the correct access rights / and the
    repository exists."), not the reason."""
    lines = [line.strip() for line in f"{r.stderr or ''}\n{r.stdout or ''}".splitlines()
             if line.strip()]
    for line in lines:
        if _FAILURE.match(line):
            return line
    said = [line for line in lines if not line.lower().startswith("hint:")]
    return (said or lines or [f"failed (exit code {r.returncode})"])[0]


def _command(args) -> str:
    """The sub-command in ``args``, past git's own options (``-c name=value``)."""
    rest = list(args)
    while rest and rest[0].startswith("-"):
        rest = rest[2:] if rest[0] in ("-c", "-C") else rest[1:]
    return rest[0] if rest else "git"


def check_branch(name: str, cwd: Path) -> str:
    """``name`` if git accepts it as a branch name (``git check-ref-format --branch``:
    no leading ``-``, no spaces, ``..``, ``:``, ``@{``...), else a ``UserError``."""
    r = git(cwd, "check-ref-format", "--branch", name, check=False)
    if r.returncode != 0 or r.stdout.strip() != name:  # "@{-1}" would be expanded
        raise UserError(f"{name!r} is not a valid branch name (git check-ref-format --branch)")
    return name


def check_revision(value: str, what: str = "revision") -> str:
    """``value`` if it can be a revision (a branch, tag, commit or ``HEAD~1``) rather
    than an option; whether it names a commit, ``git rev-parse --verify`` says."""
    if not value or value.startswith("-"):
        raise UserError(f"{what} {value!r}: a git revision does not start with '-'")
    return value


def check_remote(value: str) -> str:
    """``value`` if it can be a remote (a URL or a path) rather than an option."""
    if not value or value.startswith("-"):
        raise UserError(f"remote {value!r}: a git URL or path does not start with '-' "
                        "(write a path that does as ./-name)")
    return value
