"""git, run for the gate's worktrees and for publishing runs: a failure is one line."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .errors import UserError


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``git *args`` in ``cwd``; with ``check``, a non-zero exit raises ``UserError``
    with git's last line of output."""
    r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if check and r.returncode != 0:
        last = (r.stderr.strip() or r.stdout.strip()).splitlines()[-1:] or ["failed"]
        raise UserError(f"git {args[0]}: {last[0]}")
    return r


# A revision a user may name: a ref name git accepts (``git check-ref-format``; a commit
# id is one), then any ``~N`` / ``^N`` steps back. Ranges, reflog and ``^{...}`` forms
# are refused, and so is anything starting with "-", which git would read as an option.
_STEPS = re.compile(r"(?:[~^][0-9]*)*\Z")


def commit_of(repo: Path, ref: str, what: str) -> str:
    """The full commit id ``ref`` names in ``repo``; a ref that is not a plain name with
    ``~N``/``^N`` steps, or names no commit, is a ``UserError`` naming ``what``."""
    name = re.split(r"[~^]", ref, maxsplit=1)[0]
    steps = ref[len(name):]
    if (not name or name.startswith("-") or not _STEPS.match(steps)
            or git(repo, "check-ref-format", "--allow-onelevel", name,
                   check=False).returncode != 0):
        raise UserError(f"{what} {ref!r}: not a ref name (a branch, tag or commit id, "
                        "optionally with ~N or ^N)")
    r = git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}",
            check=False)
    if r.returncode != 0:
        raise UserError(f"{what} {ref!r}: no such commit in {repo}")
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
