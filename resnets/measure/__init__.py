"""Measuring a case: workloads, the timer, FLOPs, memory, the peak probe, environment.

Everything here imports torch; the case identity (``resnets.case``), the result record
(``resnets.schema``) and the presets (``resnets.presets``) are torch-free and live above.
A new measurement of a case goes in ``runner.measure`` (after the timed rounds, which
nothing may disturb) and lands in a ``schema.SpeedResult`` field.
"""
