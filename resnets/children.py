"""Child processes that never outlive their parent.

``run`` starts a command in its own process group and, while it runs, passes SIGINT and
SIGTERM on to the whole group (a CI cancellation signals only the parent; the benchmark it
started must stop too), then waits for it. ``Interrupted`` is what the CLI raises for
SIGTERM, as Python raises KeyboardInterrupt for SIGINT, so cleanup code runs either way.
A parent killed outright (SIGKILL, the OOM killer, a crash) runs no handler, so every child
we start also asks the kernel for SIGTERM when its parent dies (``dies_with_us``).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time

# What a shell reports for a process ended by a signal: 128 + the signal number.
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
# Looked up here, not in the child: between fork and exec only async-signal-safe work.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def dies_with_us():
    """A ``preexec_fn`` after which the child gets SIGTERM when this process dies, however
    it dies (Linux; elsewhere None, and only the signal handlers here stop children)."""
    if _prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # we died before the request was made
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


class Interrupted(KeyboardInterrupt):
    """SIGTERM arrived. A KeyboardInterrupt, so whatever stops for Ctrl-C stops for it:
    pytest turns any other exception in a test into a failure and goes on to the next."""

    exit_code = EXIT_CODES[signal.SIGTERM]


def raise_on_sigterm() -> None:
    """Turn SIGTERM into ``Interrupted`` in this process, so ``finally`` blocks run."""
    def handler(signum, frame):
        raise Interrupted()

    signal.signal(signal.SIGTERM, handler)


class _Forwarded(Exception):
    """Raised by the forwarding handler: a blocking wait resumes after a handler that
    returns (PEP 475), so without it the grace period would never start."""


@contextlib.contextmanager
def _forwarding(proc: subprocess.Popen, got: list):
    def forward(signum, frame):
        got.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)
        raise _Forwarded()

    old = {s: signal.signal(s, forward) for s in EXIT_CODES}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def run(cmd: list[str], env: dict | None = None, grace_s: float = 30.0) -> tuple[int, int | None]:
    """(exit code, the signal we passed on or None). After the first signal the group
    gets ``grace_s`` seconds to end, then SIGKILL."""
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=dies_with_us())
    got: list[int] = []
    deadline = None
    with _forwarding(proc, got):
        while True:
            try:
                code = proc.wait(timeout=None if deadline is None
                                 else max(0.0, deadline - time.monotonic()))
                break
            except _Forwarded:
                deadline = deadline or time.monotonic() + grace_s
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                deadline = time.monotonic() + grace_s  # killed: it goes at once
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything the child left behind
    return code, (got[0] if got else None)
