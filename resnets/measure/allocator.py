"""Keep glibc's heap warm while timing, so a variant's speed does not depend on what else
ran in its process.

By default glibc serves an allocation above its mmap threshold (128 KiB at first, rising
as such blocks are freed) with a fresh ``mmap`` and returns it on ``free``, and gives
the top of the heap back to the system past its trim threshold. A CPU step whose
activations are megabytes then pays page faults for fresh zeroed pages on every step, and
how many depends on the process's history: on this project's 2-core Xeon, ResNet-50
inference (224x224, batch 4, fp32) ran 21.6 samples/s alone and 24.7 timed side by side
with three other variants, whose frees had raised the threshold; a hand-written loop of
the same two variants in a fresh process agreed with neither the pick's speed-up nor the
report's (3.2x against 2.7x). With the thresholds fixed high (``MALLOC_MMAP_THRESHOLD_``
and ``MALLOC_TRIM_THRESHOLD_``) the lone case ran 25.3 samples/s, as in the group.

So the engine fixes both thresholds once per process (``mallopt``) before anything is
built: freed blocks are reused, as PyTorch's caching allocator does on CUDA and as a long
training loop settles into, and every variant is timed with the same allocator however it
is launched. The record says what was set (``timing.allocator``). The processes this
version starts for code that may predate it (the gate's and bisect's other side, in its
own worker or torchrun) get the same thresholds through glibc's environment variables
(``child_env``), so a gate never calls the heap a change of the code.
"""
from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3   # glibc's <malloc.h>
MMAP_THRESHOLD = 32 * 2 ** 20   # glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX, 64-bit)
TRIM_THRESHOLD = 2 ** 30        # an int: glibc keeps up to this much free heap

_state: str | None = None


def keep_warm() -> str:
    """Fix the thresholds (once per process); what was set, or why nothing was."""
    global _state
    if _state is None:
        _state = _set()
    return _state


def child_env(env: dict | None = None) -> dict:
    """``env`` (default: this process's) with glibc's thresholds set as ``keep_warm``
    sets them, unless already given."""
    out = dict(os.environ if env is None else env)
    out.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
    out.setdefault("MALLOC_TRIM_THRESHOLD_", str(TRIM_THRESHOLD))
    return out


def _set() -> str:
    libc, _ = platform.libc_ver()
    if libc != "glibc":
        return f"system default ({libc or 'not glibc'}: no mallopt)"
    here, glibc = ctypes.CDLL(None), ctypes.CDLL("libc.so.6")
    if (ctypes.cast(here.malloc, ctypes.c_void_p).value
            != ctypes.cast(glibc.malloc, ctypes.c_void_p).value):
        # jemalloc or tcmalloc preloaded: glibc's mallopt would report success and do nothing
        return "system default (malloc is not glibc's: a preloaded allocator)"
    mmap = glibc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    trim = glibc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    if mmap and trim:
        return (f"glibc, mmap threshold {MMAP_THRESHOLD >> 20} MiB, trim threshold "
                f"{TRIM_THRESHOLD >> 20} MiB (freed blocks reused)")
    return (f"glibc refused mallopt for the {'trim' if mmap else 'mmap'} threshold"
            + (" (mmap threshold set)" if mmap else ""))
