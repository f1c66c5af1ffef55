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
import threading

# What a shell reports for a process ended by a signal: 128 + the signal number.
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
# Looked up once, here: between fork and exec the child only makes the call (no import,
# no lookup), the least a ``preexec_fn`` can do in a process with other threads.
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


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


@contextlib.contextmanager
def _forwarding(child: list, got: list, grace_s: float):
    """While the block runs, SIGINT and SIGTERM go on to the group of ``child[0]`` (once
    it exists), and the first one starts a timer that SIGKILLs the group after
    ``grace_s``. The handler never raises: a blocking wait simply resumes after it, and
    an exception from a second signal could land anywhere, even in this cleanup."""
    timer = None

    def forward(signum, frame):
        nonlocal timer
        got.append(signum)
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child[0].pid, signum)
            if timer is None:
                timer = threading.Timer(grace_s, _kill_group, (child[0].pid,))
                timer.daemon = True
                timer.start()

    old = {s: signal.signal(s, forward) for s in EXIT_CODES}
    try:
        yield forward
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if timer is not None:
            timer.cancel()


def run(cmd: list[str], env: dict | None = None, grace_s: float = 30.0) -> tuple[int, int | None]:
    """(exit code, the signal we passed on or None). After the first signal the group
    gets ``grace_s`` seconds to end, then SIGKILL."""
    child: list[subprocess.Popen] = []
    got: list[int] = []
    with _forwarding(child, got, grace_s) as forward:  # before the child: no gap
        child.append(subprocess.Popen(cmd, env=env, start_new_session=True,
                                      preexec_fn=dies_with_us()))
        if got:  # a signal came while it started
            forward(got.pop(0), None)
        code = child[0].wait()
    _kill_group(child[0].pid)  # anything the child left behind
    return code, (got[0] if got else None)
