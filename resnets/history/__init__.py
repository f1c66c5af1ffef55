"""Performance history: follow every case across many runs and find its change points.
``analysis`` builds the series and finds the shifts (the method is its docstring);
``render`` writes them as a page, trend plots, Markdown and terminal lines.
"""
from .analysis import Bisected, Options, Series, Shift, bisect_results, history
from .render import markdown, page, terminal, write

__all__ = ["Bisected", "Options", "Series", "Shift", "bisect_results", "history", "markdown",
           "page", "terminal", "write"]
