"""The one place that knows how to wait for a device."""
from __future__ import annotations

from collections.abc import Callable


def synchronizer(device: str) -> Callable[[], None]:
    """What waits for the device's queued work: ``torch.cuda.synchronize`` on CUDA (kernels
    run asynchronously, so a clock read without it times the launch, not the work);
    nothing on CPU, where ops return when they are done."""
    if device == "cuda":
        import torch

        return torch.cuda.synchronize
    return _nothing


def _nothing() -> None:
    return None
