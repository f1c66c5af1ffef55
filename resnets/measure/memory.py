"""Peak memory of one step, measured in a separate pass after timing.

CUDA: the caching allocator's peak allocated and peak reserved bytes for one step
(``reset_peak_memory_stats`` first).

CPU has no allocator statistics, so we count tensors: a ``TorchDispatchMode`` follows
every storage that exists at the start of the step (weights, buffers, gradients,
optimizer state, inputs) and every storage an op of the step creates, drops each one when
its last reference dies, and records the peak of the live total. It is exact for tensor
memory and excludes allocator slack and library-internal scratch space (oneDNN
workspaces), which is what the method string says.
"""
from __future__ import annotations

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .workload import Workload

CPU_METHOD = ("peak live tensor-storage bytes during one step (weights, grads, optimizer "
              "state, inputs and every op output), tracked by TorchDispatchMode; excludes "
              "allocator overhead and library scratch buffers")
CUDA_METHOD = "torch.cuda.max_memory_allocated / max_memory_reserved over one step"
AOTI_CPU_METHOD = ("not measured: an AOTInductor package allocates in C++, out of sight of "
                   "the dispatcher that the CPU method follows")


class LiveTensorBytes(TorchDispatchMode):
    def __init__(self, tensors=()):
        super().__init__()
        self._live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak = 0
        for t in tensors:
            self._track(t)
        self._sweep()

    def _track(self, t) -> None:
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            storage = t.untyped_storage()
            ref = StorageWeakRef(storage)
            self._live.setdefault(ref.cdata, (ref, storage.nbytes()))

    def _sweep(self) -> None:
        for key in [k for k, (ref, _) in self._live.items() if ref.expired()]:
            del self._live[key]
        self.peak = max(self.peak, sum(n for _, n in self._live.values()))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            self._track(t)
        self._sweep()
        return out


def peak_memory(work: Workload) -> dict:
    if work.case.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        work.step()
        torch.cuda.synchronize()
        return {"peak_memory_bytes": int(torch.cuda.max_memory_allocated()),
                "peak_memory_reserved_bytes": int(torch.cuda.max_memory_reserved()),
                "memory_method": CUDA_METHOD}
    if work.case.compile == "export-aoti":
        return {"peak_memory_bytes": None, "peak_memory_reserved_bytes": None,
                "memory_method": AOTI_CPU_METHOD}
    tracker = LiveTensorBytes(work.tensors())
    with tracker:
        work.step()
    return {"peak_memory_bytes": int(tracker.peak), "peak_memory_reserved_bytes": None,
            "memory_method": CPU_METHOD}
