"""One writer per run folder: a lock held for the whole run.

Two runs writing one folder fight over the cores (so both measure nonsense) and
overwrite each other's files; a ``--resume`` of a run that is still going does the same.
``hold(run_dir)`` takes the folder's lock (``filelock``, an OS-level lock the kernel drops
when its process dies, so a crashed run's lock is simply taken over) and records the
holder's PID beside it, for the one-line refusal the second writer gets. ``resnets run``
holds it for the pytest child it starts and says so in ``HELD_ENV``, so the child does not
try to take it again.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import filelock

from .errors import UserError

LOCK = ".lock"
OWNER = ".lock.pid"
HELD_ENV = "RESNETS_RUN_LOCK_HELD"


def held(run_dir: Path) -> bool:
    """Whether a live process holds ``run_dir``'s lock (tried without waiting; a folder
    without a lock file is held by nobody)."""
    path = Path(run_dir) / LOCK
    if not path.exists():
        return False
    lock = filelock.FileLock(path, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        return True
    lock.release()
    return False


def if_run(folder: Path):
    """``hold(folder)`` when ``folder`` holds a run (a report or profile written into it
    must not interleave with a run still writing it); otherwise nothing."""
    folder = Path(folder)
    is_run = (folder / "cases").is_dir() or (folder / "run-options.json").is_file()
    return hold(folder) if is_run else contextlib.nullcontext()


@contextlib.contextmanager
def hold(run_dir: Path):
    """Hold ``run_dir``'s lock while the block runs; ``UserError`` if another live
    process holds it (a dead one's lock is taken over)."""
    run_dir = Path(run_dir)
    if os.environ.get(HELD_ENV) == str(run_dir.resolve()):
        yield
        return
    made = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(run_dir / LOCK, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        try:
            pid = (run_dir / OWNER).read_text().strip() or "?"
        except OSError:
            pid = "?"
        raise UserError(f"{run_dir}: another run (PID {pid}) is writing this folder; wait for "
                        "it to end, or use another --out") from None
    try:
        (run_dir / OWNER).write_text(str(os.getpid()))
        yield
    finally:
        (run_dir / OWNER).unlink(missing_ok=True)
        lock.release()
        if made and {p.name for p in run_dir.iterdir()} <= {LOCK}:  # nothing was written:
            shutil.rmtree(run_dir, ignore_errors=True)              # no empty folder left
