"""The ``resnets`` command line.

Each sub-command lives in ``resnets/commands/<name>.py`` with ``add_arguments(parser)``
and ``main(args) -> int``. Command modules import torch only inside ``main``, so
``resnets report``/``compare`` and ``--help`` start fast and work without torch.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import UserError

COMMANDS = {
    "models": "list the reference models: family, parameters, input shape",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus exit 2), not usage + error."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="resnets", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"resnets {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, help_ in COMMANDS.items():
        module = importlib.import_module(f".commands.{name}", __package__)
        p = sub.add_parser(name, help=help_, description=(module.__doc__ or help_).strip())
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._module.main(args) or 0)
    except UserError as exc:
        print(f"resnets {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"resnets {args.command}: interrupted; results already written are kept",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `resnets models | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
