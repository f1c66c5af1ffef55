"""The ``resnets`` command line.

Each sub-command lives in ``resnets/commands/<name>.py`` with a one-line module docstring
(its help), ``add_arguments(parser)`` and ``main(args) -> int``; it is found by name, so
adding a command means adding a module. Command modules import torch only inside ``main``, so
``resnets report``/``compare`` and ``--help`` start fast and work without torch.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands as _commands
from .errors import UserError

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
    try:
        return int(args._module.main(args) or 0)
    except Interrupted as exc:
        print(f"resnets {args.command}: terminated; results already written are kept",
              file=sys.stderr)
        return exc.exit_code
    except UserError as exc:
        print(f"resnets {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # an output path that can't be written, a vanished input file
        where = f" {exc.filename}" if exc.filename else ""
        print(f"resnets {args.command}: error:{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"resnets {args.command}: interrupted; results already written are kept",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `resnets models | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
