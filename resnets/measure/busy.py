"""How much of a step the GPU spends computing: the share that tells a launch-bound case.

A small model on a big GPU finishes each kernel before the CPU has launched the next, so
the GPU idles for most of the step; then neither a faster precision nor a better memory
format can help (their "speed-ups" are noise in the launch overhead), while CUDA graphs
or larger batches do. ``gpu_busy`` profiles one extra step (never a timed one) with
``torch.profiler`` and divides the time covered by its kernels (the union of their
intervals, so concurrent kernels count once) by the median step time measured without
the profiler: kernel durations barely change under a profiler, the CPU side does.
"""
from __future__ import annotations

# Below this share of the step with a kernel running, a case is launch-bound.
LAUNCH_BOUND_BELOW = 0.5
METHOD = ("kernel time of one profiled step (union of kernel intervals, torch.profiler) / "
          "median timed step; launch-bound when below 50%")


def gpu_busy(work, median_step_s: float) -> dict:
    """``{"gpu_busy", "launch_bound", "gpu_busy_method"}`` for a CUDA workload; {} on CPU."""
    if work.case.device != "cuda":
        return {}
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        work.step()
        torch.cuda.synchronize()
    spans = sorted((e.time_range.start, e.time_range.end) for e in prof.events()
                   if e.device_type == DeviceType.CUDA)
    busy_us, end = 0.0, float("-inf")
    for start, stop in spans:
        if stop > end:
            busy_us += stop - max(start, end)
            end = stop
    share = min(1.0, busy_us / 1e6 / median_step_s) if median_step_s > 0 else None
    return {"gpu_busy": share,
            "launch_bound": None if share is None else share < LAUNCH_BOUND_BELOW,
            "gpu_busy_method": METHOD}
