"""The ``resnets`` command line.

Each sub-command lives in ``resnets/commands/<name>.py`` with a one-line module docstring
(its help), ``add_arguments(parser)`` and ``main(args) -> int``; it is found by name, so
adding a command means adding a module. Command modules import torch only inside ``main``, so
``resnets report``/``compare`` and ``--help`` start fast and work without torch.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import select
import shutil
import sys

from . import commands as _commands
from .errors import UserError
from .text import printable

# Shown first, in this order; any other command module follows alphabetically.
ORDER = ("run", "report", "advise", "compare", "gate", "bisect", "history", "publish", "profile",
         "train", "models")


def command_names() -> list[str]:
    found = [m.name for m in pkgutil.iter_modules(_commands.__path__) if not m.name.startswith("_")]
    return sorted(found, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus exit 2), not usage + error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="resnets", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"resnets {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in command_names():
        module = importlib.import_module(f".commands.{name}", __package__)
        doc = (module.__doc__ or name).strip()
        p = sub.add_parser(name, help=doc.splitlines()[0], description=doc)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .children import Interrupted, raise_on_sigterm

    args = build_parser().parse_args(argv)
    raise_on_sigterm()
    stdout, sys.stdout = sys.stdout, _ReaderMayLeave(sys.stdout)
    try:
        code = int(args._module.main(args) or 0)
        sys.stdout.flush()  # here, not in the interpreter's flush at exit
        return code
    except Interrupted as exc:
        _say(args.command, "terminated; results already written are kept")
        return exc.exit_code
    except UserError as exc:
        _say(args.command, f"error: {exc}")
        return exc.exit_code
    except OSError as exc:  # an output path that can't be written, a vanished input file
        _say(args.command, f"error: {_os_error(exc)}")
        return 2
    except KeyboardInterrupt:
        _say(args.command, "interrupted; results already written are kept")
        return 130
    finally:
        sys.stdout = stdout


class _ReaderMayLeave:
    """``sys.stdout``, except that once the reader of the pipe it writes into has gone
    (``resnets models | head -1``), the rest goes to /dev/null instead of raising
    BrokenPipeError: that is no error, and the command runs to its end, so its exit
    code stays its own (``compare | head`` under pipefail still fails on a regression,
    even with PYTHONUNBUFFERED, where the pipe breaks in mid-print). A broken pipe to
    anything else (a worker) is still an error."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._quietly(self._stream.write, text)
        return len(text)

    def flush(self) -> None:
        self._quietly(self._stream.flush)

    def _quietly(self, call, *args) -> None:
        try:
            call(*args)
        except BrokenPipeError:
            if not _reader_gone(self._stream):
                raise
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
            call(*args)  # what is still buffered, and this, now go nowhere

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _say(command: str, message: str) -> None:
    """One line on stderr: messages quote file names and values, which may hold control
    characters or line breaks."""
    print(f"resnets {command}: {printable(message)}", file=sys.stderr)


def _os_error(exc: OSError) -> str:
    """An OSError as "FILE: reason". ``shutil``'s copy errors carry a list of
    ``(source, destination, reason)`` instead; the first names the file."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
        problems = exc.args[0]
        if problems and isinstance(problems[0], tuple) and len(problems[0]) == 3:
            source, _, why = problems[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            return f"{source}: {why}{more}"
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{exc.filename}: {reason}" if exc.filename else reason


def _reader_gone(stream) -> bool:
    """Whether ``stream`` is a pipe whose reading end has closed (poll says so), so that a
    BrokenPipeError came from the user's pipe, not from one to a worker process."""
    try:
        poller = select.poll()
        poller.register(stream.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no file descriptor
        return False


if __name__ == "__main__":
    sys.exit(main())
