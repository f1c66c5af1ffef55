"""List the reference models with their family, parameter count and default input."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--family", help="only this family (e.g. resnet-cifar)")


def main(args: argparse.Namespace) -> int:
    import torch

    from .. import models
    from ..errors import UserError
    from ..text import text_table

    names = models.names(args.family)
    if not names:
        families = sorted({models.spec(n).family for n in models.names()})
        raise UserError(f"no family {args.family!r} (families: {', '.join(families)})")
    rows = []
    for name in names:
        s = models.spec(name)
        with torch.device("meta"):  # shapes only: counting needs no weights
            params = sum(p.numel() for p in models.create(name).parameters())
        rows.append((name, s.family, f"{params:,}", "x".join(map(str, s.input_shape)),
                     s.torchvision or "-"))
    print(text_table(("name", "family", "params", "input", "torchvision"), rows,
                     [False, False, True, False, False]))
    return 0
