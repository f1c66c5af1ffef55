"""Measuring a case: identity, workloads, timer, FLOPs, memory, peak probe, environment.

Only ``case`` and ``presets`` are torch-free; import the rest where torch is wanted."""
