"""Errors that the CLI turns into one line on stderr and exit code 2.

Anything raised as one of these is the user's input or environment at fault, never a bug:
the message must say what is wrong and, where it can, what to do instead.
"""


class UserError(Exception):
    """Bad input, bad option or a missing file: reported in one line, exit code 2."""

    exit_code = 2
