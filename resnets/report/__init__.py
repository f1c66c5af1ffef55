"""The benchmark report: tables, plots, HTML and Markdown from result files. Torch-free.

``load(paths)`` reads pytest-benchmark JSON files, run folders, folders of JSON and globs
into one tidy DataFrame (one row per case and run; see ``resnets.results``). Each table
builder takes that frame and returns a DataFrame in display units; ``write_report`` writes
them all, with the plots, as ``index.html``, ``summary.md``, ``results.csv``,
``tables/`` and ``plots/``; ``advice`` says what to use (also ``resnets advise``). Only
pandas, numpy and matplotlib are imported, so a report can be made on a machine without
torch.

A new table is a function in ``tables.py`` plus a line in ``build.table_sections``; a new
plot is a function in ``plots.py`` plus a line in ``PLOTS``. A new metric needs neither
(``resnets.schema``).
"""
from .. import results
from ..results import ResultsError
from .advice import advise, speedups
from .build import write_report
from .tables import (
    cases_table,
    convergence_table,
    environment_table,
    layer_table,
    method_table,
    missing_table,
    models_table,
    speedup_matrix,
    torchvision_table,
)


def load(paths, strict: bool = False):
    """``results.load`` and each row's level statistics, computed once
    (``frame.with_levels``): what every table, plot and piece of advice reads."""
    from .frame import with_levels

    return with_levels(results.load(paths, strict=strict))


__all__ = ["ResultsError", "load", "write_report", "advise", "speedups", "models_table",
           "speedup_matrix", "torchvision_table", "cases_table", "convergence_table",
           "layer_table", "method_table", "environment_table", "missing_table"]
