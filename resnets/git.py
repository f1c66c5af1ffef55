"""git, run for the gate's worktrees and for publishing runs: a failure is one line."""
from __future__ import annotations

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
