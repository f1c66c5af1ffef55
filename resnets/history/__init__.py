"""Performance history: follow every case across many runs and find its change points.
``analysis`` builds the series and finds the shifts (the method is its docstring);
``render`` writes them as trend plots, Markdown and terminal lines, like ``compare``.
"""
from .analysis import Options, Series, Shift, history
from .render import markdown, terminal, write

__all__ = ["Options", "Series", "Shift", "history", "markdown", "terminal", "write"]
