"""Keep history: add a finished run to a git branch that holds every run's case files.

The nightly job runs the full preset, then ``publish`` copies the run's ``cases/`` and
``run-state.json`` into ``runs/<run name>/`` on the history branch (``benchmark-results``)
of a remote, commits and pushes. Two jobs may publish at once: a rejected push
(non-fast-forward) is fetched, rebased and tried again, a few times. Only a complete run
is published (``run-state.json`` says every planned case was attempted); a partial one
only with ``partial=True``, under ``runs/<run name>-partial/``, which ``resnets history``
leaves out of its series.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from pathlib import Path

from .errors import UserError
from .git import git
from .store import CASES_DIR

RUN_STATE = "run-state.json"
PARTIAL_SUFFIX = "-partial"
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")  # a run's folder under runs/, never a path


def run_state(run_dir: Path) -> dict:
    """What ``resnets run`` recorded about the run as a whole ({} if nothing)."""
    try:
        state = json.loads((Path(run_dir) / RUN_STATE).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def publish(run_dir: Path, remote: str, branch: str = "benchmark-results",
            partial: bool = False, retries: int = 5, name: str | None = None) -> str:
    """Push ``run_dir`` onto ``branch`` of ``remote``; returns the path it got there."""
    run_dir = Path(run_dir)
    if not (run_dir / CASES_DIR).is_dir():
        raise UserError(f"{run_dir}: not a run folder (no {CASES_DIR}/)")
    state = run_state(run_dir)
    complete = bool(state.get("complete"))
    if not complete and not partial:
        why = (f"{state.get('attempted', '?')} of {state.get('planned', '?')} cases attempted"
               if state else f"no {RUN_STATE}")
        raise UserError(f"{run_dir}: not a complete run ({why}); pass --partial to keep it "
                        "marked as partial")
    folder = name or run_dir.resolve().name
    if not NAME.fullmatch(folder):
        what = f"--name {folder!r}" if name else f"the run folder's name {folder!r}"
        raise UserError(f"{what}: a name under runs/ is letters, digits and _.+- (no path), "
                        "not starting with a dot" + ("" if name else "; pass --name"))
    target = f"runs/{folder}{'' if complete else PARTIAL_SUFFIX}"
    with tempfile.TemporaryDirectory(prefix="resnets-publish-") as tmp:
        work = Path(tmp) / "history"
        git(Path(tmp), "init", "-q", str(work))
        git(work, "remote", "add", "origin", remote)
        exists = git(work, "fetch", "-q", "origin", branch, check=False).returncode == 0
        if exists:
            git(work, "checkout", "-q", "-b", branch, "FETCH_HEAD")
        else:
            git(work, "checkout", "-q", "--orphan", branch)
        dest = work / target
        if dest.exists():
            raise UserError(f"{target} is already on {branch}: a run is published once")
        shutil.copytree(run_dir / CASES_DIR, dest / CASES_DIR)
        for extra in (RUN_STATE, "run-options.json"):
            if (run_dir / extra).is_file():
                shutil.copy(run_dir / extra, dest / extra)
        git(work, "add", target)
        git(work, "-c", "user.name=resnets", "-c", "user.email=resnets@users.noreply.github.com",
            "commit", "-qm", f"{'partial ' if not complete else ''}run {target}")
        for attempt in range(retries + 1):
            if git(work, "push", "-q", "origin", f"HEAD:refs/heads/{branch}",
                   check=False).returncode == 0:
                return target
            if attempt == retries:
                break
            time.sleep(min(2 ** attempt, 30))
            git(work, "fetch", "-q", "origin", branch)
            git(work, "rebase", "-q", "FETCH_HEAD")
    raise UserError(f"could not push {target} to {branch} after {retries + 1} tries")
