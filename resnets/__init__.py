"""resnets: a benchmarking and profiling harness for reference CNN implementations.

Kept light on purpose: importing ``resnets`` loads no torch, so the report and comparison
tools start in well under a second. Import ``resnets.models`` for the models. Where a new
model, metric, option, table, plot or command goes: the README's Layout section.
"""
__version__ = "0.1.0"
