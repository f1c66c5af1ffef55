"""resnets: a benchmarking and profiling harness for reference CNN implementations.

Kept light on purpose: importing ``resnets`` loads no torch, so the report and comparison
tools start in well under a second. Import ``resnets.models`` for the models.
"""
__version__ = "0.1.0"
