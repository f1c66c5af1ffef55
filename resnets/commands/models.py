"""List the reference models with their family, parameter count and default input."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--family", help="only this family (e.g. resnet-cifar)")


def main(args: argparse.Namespace) -> int:
    from .. import models
    from ..errors import UserError

    names = models.names(args.family)
    if not names:
        families = sorted({models.spec(n).family for n in models.names()})
        raise UserError(f"no family {args.family!r} (families: {', '.join(families)})")
    rows = []
    for name in names:
        s = models.spec(name)
        params = sum(p.numel() for p in models.create(name).parameters())
        rows.append((name, s.family, f"{params:,}", "x".join(map(str, s.input_shape)),
                     s.torchvision or "-"))
    header = ("name", "family", "params", "input", "torchvision")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for i, row in enumerate([header, *rows]):
        print("  ".join(c.rjust(w) if j == 2 else c.ljust(w)
                        for j, (c, w) in enumerate(zip(row, widths))).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    return 0
