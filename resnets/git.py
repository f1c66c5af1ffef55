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


# A revision a user may name: a ref name git accepts (``git check-ref-format``; a commit
# id is one), then any ``~N`` / ``^N`` steps back. Ranges, reflog and ``^{...}`` forms
# are refused, and so is anything starting with "-", which git would read as an option.
_STEPS = re.compile(r"(?:[~^][0-9]*)*\Z")


def commit_of(repo: Path, ref: str, what: str) -> str:
    """The full commit id ``ref`` names in ``repo``; a ref that is not a plain name with
    ``~N``/``^N`` steps, or names no commit, is a ``UserError`` naming ``what``."""
    name = re.split(r"[~^]", check_revision(ref, what), maxsplit=1)[0]
    steps = ref[len(name):]
    if (not name or not _STEPS.match(steps)
            or git(repo, "check-ref-format", "--allow-onelevel", name,
                   check=False).returncode != 0):
        raise UserError(f"{what} {ref!r}: not a ref name (a branch, tag or commit id, "
                        "optionally with ~N or ^N)")
    r = git(repo, "rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}",
            check=False)
    if r.returncode != 0:
        raise UserError(f"{what} {ref!r}: git rev-parse: {reason(r)}")
    return r.stdout.strip()


def first_parents(repo: Path, good: str, bad: str) -> list[str]:
    """The commits after ``good`` up to ``bad`` along ``bad``'s first parents, oldest
    first (``bad`` last): where a first-parent bisection looks (merges count as one
    commit, as a branch's history of merged pull requests reads)."""
    if git(repo, "merge-base", "--is-ancestor", "--end-of-options", good, bad,
           check=False).returncode != 0:
        raise UserError(f"{good[:12]} is not an ancestor of {bad[:12]}: the good end must "
                        "come before the bad end")
    return git(repo, "rev-list", "--first-parent", "--reverse", "--end-of-options",
               f"{good}..{bad}").stdout.split()


def add_worktree(repo: Path, commit: str, folder: Path, made: list[Path]) -> Path:
    """Check ``commit`` out as a detached worktree at ``folder`` (added to ``made`` at
    once, so that the caller's cleanup removes it whatever happens next)."""
    folder = folder.resolve()  # git runs in ``repo``; the path is ours
    git(repo, "worktree", "add", "--detach", "--end-of-options", str(folder), commit)
    made.append(folder)
    return folder
