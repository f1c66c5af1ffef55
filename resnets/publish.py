"""Keep history: add a finished run to a git branch that holds every run's case files.

The nightly job runs the full preset, then ``publish`` copies the run's ``cases/*.json``,
``run-state.json`` and ``run-options.json`` (regular files only: see ``published``) into
``runs/<run name>/`` on the history branch (``benchmark-results``) of a remote, commits
and pushes. Two jobs may publish at once: a rejected push (non-fast-forward) is fetched,
rebased and tried again, a few times. Only a complete run is published
(``run-state.json`` says every planned case was attempted); a partial one only with
``partial=True``, under ``runs/<run name>-partial/``, which ``resnets history`` leaves out
of its series.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path

from . import files
from .errors import UserError
from .git import check_branch, check_remote, git, reason
from .store import CASES_DIR
from .text import printable

RUN_STATE = "run-state.json"
RUN_FILES = (RUN_STATE, "run-options.json")  # beside cases/, published with them
PARTIAL_SUFFIX = "-partial"
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")  # a run's folder under runs/, never a path


def run_state(run_dir: Path) -> dict:
    """What ``resnets run`` recorded about the run as a whole ({} if nothing, or if the
    file is not one ``published`` would copy)."""
    try:
        state = files.parse_json(published(Path(run_dir) / RUN_STATE).decode("utf-8"),
                                 Path(run_dir) / RUN_STATE)
    except (files.FileRefused, UnicodeDecodeError):
        return {}
    return state if isinstance(state, dict) else {}


def published(path: Path) -> bytes:
    """The bytes of ``path`` if it is what a run folder holds, a regular ``*.json`` file
    of at most ``files.MAX_BYTES``; else ``files.FileRefused`` saying why. A symlink is
    refused whatever it points at (``cases/zz.json -> ~/.ssh/id_rsa`` once reached the
    history branch, and ``cases/up -> ..`` copied gigabytes), and so are FIFOs, devices
    and folders: a run folder from elsewhere (a CI artifact) is data, not a pointer to
    more of it. It is taken as it lies; one changed while publishing could slip a link
    in between the check and the read."""
    if path.is_symlink():
        raise files.FileRefused(f"{path}: a symbolic link; not published")
    if path.suffix != ".json":
        raise files.FileRefused(f"{path}: not a *.json file; not published")
    return files.read_bytes(path, files.MAX_BYTES)


def _copy_run(run_dir: Path, dest: Path) -> None:
    """Copy what ``published`` accepts of ``run_dir``'s ``cases/*`` and ``RUN_FILES``
    into ``dest``, warning in one line about each thing left out."""
    cases = run_dir / CASES_DIR
    wanted = [(cases / n, dest / CASES_DIR / n) for n in sorted(os.listdir(cases))]
    wanted += [(run_dir / n, dest / n) for n in RUN_FILES if os.path.lexists(run_dir / n)]
    (dest / CASES_DIR).mkdir(parents=True)
    for source, target in wanted:
        try:
            target.write_bytes(published(source))
        except files.FileRefused as exc:
            print(f"resnets: warning: skipped {printable(exc)}", file=sys.stderr)


def publish(run_dir: Path, remote: str, branch: str = "benchmark-results",
            partial: bool = False, retries: int = 5, name: str | None = None) -> str:
    """Push ``run_dir`` onto ``branch`` of ``remote``; returns the path it got there."""
    run_dir = Path(run_dir)
    if (run_dir / CASES_DIR).is_symlink() or not (run_dir / CASES_DIR).is_dir():
        raise UserError(f"{run_dir}: not a run folder (no {CASES_DIR}/ folder of its own)")
    check_remote(remote)
    check_branch(branch, run_dir)
    state = run_state(run_dir)
    complete = bool(state.get("complete"))
    if not complete and not partial:
        why = (f"{state.get('attempted', '?')} of {state.get('planned', '?')} cases attempted"
               if state else f"no readable {RUN_STATE}")
        raise UserError(f"{run_dir}: not a complete run ({why}); pass --partial to keep it "
                        "marked as partial")
    folder = name or run_dir.resolve().name
    if not NAME.fullmatch(folder):
        what = f"--name {folder!r}" if name else f"the run folder's name {folder!r}"
        raise UserError(f"{what}: a name under runs/ is letters, digits and _.+- (no path), "
                        "not starting with a dot" + ("" if name else "; pass --name"))
    target = f"runs/{folder}{'' if complete else PARTIAL_SUFFIX}"
    ref = f"refs/heads/{branch}"
    # Removed however this ends: an error, a refused push, Ctrl-C or SIGTERM.
    with tempfile.TemporaryDirectory(prefix="resnets-publish-") as tmp:
        work = Path(tmp) / "history"
        git(Path(tmp), "init", "-q", "--", str(work))
        git(work, "remote", "add", "--", "origin", remote)
        found = git(work, "ls-remote", "--exit-code", "--heads", "--", "origin", ref,
                    check=False)
        if found.returncode not in (0, 2):  # 2: reachable, but no such branch yet
            raise UserError(f"cannot read {remote}: {reason(found)}")
        if found.returncode == 0:
            git(work, "fetch", "-q", "--", "origin", ref)
            git(work, "checkout", "-q", "-b", branch, "FETCH_HEAD")
        else:
            git(work, "checkout", "-q", "--orphan", branch)
        dest = work / target
        if dest.exists():
            raise UserError(f"{target} is already on {branch}: a run is published once")
        _copy_run(run_dir, dest)
        git(work, "add", "--", target)
        git(work, "-c", "user.name=resnets", "-c", "user.email=resnets@users.noreply.github.com",
            "commit", "-qm", f"{'partial ' if not complete else ''}run {target}")
        for attempt in range(retries + 1):
            pushed = git(work, "push", "-q", "--", "origin", f"HEAD:{ref}", check=False)
            if pushed.returncode == 0:
                return target
            if attempt == retries:
                break
            time.sleep(min(2 ** attempt, 30))
            git(work, "fetch", "-q", "--", "origin", ref)
            git(work, "rebase", "-q", "FETCH_HEAD")
    raise UserError(f"could not push {target} to {branch} after {retries + 1} tries: "
                    f"{reason(pushed)}")
