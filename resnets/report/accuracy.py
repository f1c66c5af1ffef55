"""The accuracy cost of what users ship, as data: the table ``resnets accuracy`` writes
(``resnets.convergence.accuracy``), read back without torch for the report and the advice.

The same trained weights are evaluated in several *forms*: fp32 eager (the reference),
bf16 autocast, int8 (PT2E + Inductor) and the AOTInductor package (fp32). Each row is one
(model, dataset, seed, form): its test accuracy, its top-1 agreement with fp32 on the
test set, and ``delta_points``, its accuracy minus fp32's in percentage points.

A speed variant inherits the accuracy cost of its form (``form_of``): its precision, and
for fp32 whether it is the exported package; memory format and torch.compile change
nothing a test set can see. The advice (``report.advice``) holds back a variant whose
measured accuracy falls more than ``max_drop`` points below fp32 for the same model, and
an int8 variant whose accuracy was not measured for that model at all: quantization is
the one variant whose cost is known to depend on the model and its calibration.

The file is ``accuracy.json`` (``ACCURACY_FILE``); a run folder holding one is read with
its results. Like every result file it is hostile until proven otherwise: read bounded
(``resnets.files``), every value checked, a bad one a one-line ``UserError``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import files
from ..errors import UserError
from ..options import ACCURACY_FORMS, MAX_ACCURACY_DROP

ACCURACY_FILE = "accuracy.json"
FORMAT, VERSION = "resnets-accuracy", 1
FORMS = ACCURACY_FORMS
REFERENCE = "fp32"
QUANTIZED = ("int8",)
DEFAULT_MAX_DROP = MAX_ACCURACY_DROP   # percentage points below fp32
# (column, type, bounds) of a row; text is bounded to a name's length.
ROW_FIELDS = {"model": str, "dataset": str, "seed": int, "form": str, "variant": str,
              "test_acc": float, "agreement": float, "delta_points": float, "n_test": int,
              "iters_trained": int}
SHARES = ("test_acc", "agreement")


def points(value: float) -> str:
    """``1 point``, ``0.5 points``."""
    return f"{value:g} point{'' if value == 1 else 's'}"


def form_of(precision: str, compile: str) -> str:
    """The accuracy form a speed variant's numerics are those of."""
    if precision == REFERENCE and compile == "export-aoti":
        return "export-aoti"
    return precision


def _row(raw, where: str) -> dict:
    if not isinstance(raw, dict):
        raise UserError(f"{where}: a row is not an object")
    out = {}
    for name, kind in ROW_FIELDS.items():
        value = raw.get(name)
        if kind is str:
            if not isinstance(value, str) or not 0 < len(value) <= 200:
                raise UserError(f"{where}: {name} must be a name of 1-200 characters")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or (kind is int and value != int(value)):
            raise UserError(f"{where}: {name} must be a {'whole ' if kind is int else ''}number")
        elif name in SHARES and not 0 <= value <= 1:
            raise UserError(f"{where}: {name} must be a share between 0 and 1, not {value:g}")
        elif name != "delta_points" and value < 0:
            raise UserError(f"{where}: {name} must not be negative")
        out[name] = kind(value)
    if out["form"] not in FORMS:
        raise UserError(f"{where}: form must be one of {', '.join(FORMS)}, not "
                        f"{out['form'][:40]!r}")
    return out


def read_file(path: Path) -> pd.DataFrame:
    """The rows of one accuracy file (``UserError`` naming it if it is not one)."""
    doc = files.read_json(Path(path))
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UserError(f"{path}: not a resnets accuracy table (format {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise UserError(f"{path}: accuracy table version {doc.get('version')!r}; this "
                        f"resnets reads version {VERSION}")
    rows = doc.get("rows")
    if not isinstance(rows, list):
        raise UserError(f"{path}: rows must be a list")
    return pd.DataFrame([_row(r, f"{path}: row {i}") for i, r in enumerate(rows)],
                        columns=list(ROW_FIELDS))


def load(paths) -> pd.DataFrame:
    """Every accuracy row behind ``paths``: accuracy files, and folders holding
    ``accuracy.json`` (a folder without one adds nothing, so result folders can be
    passed as they are). Later files replace earlier rows of the same model, dataset,
    seed and form."""
    found = []
    for p in map(Path, paths or ()):
        target = p / ACCURACY_FILE if p.is_dir() else p
        if p.is_dir() and not target.exists():
            continue
        found.append(read_file(target))
    if not found:
        return pd.DataFrame(columns=list(ROW_FIELDS))
    df = pd.concat(found, ignore_index=True)
    return df.drop_duplicates(["model", "dataset", "seed", "form"], keep="last")


def beside(df: pd.DataFrame, extra=()) -> pd.DataFrame:
    """The accuracy rows of the run folders ``df``'s results came from (their
    ``accuracy.json``) and of ``extra`` (files or folders the user named)."""
    from ..results import run_folder

    sources = df["source"].dropna() if "source" in df else ()
    folders = sorted({run_folder(Path(s)) for s in sources} - {None})
    return load([*folders, *(extra or ())])


@dataclass(frozen=True)
class Cost:
    """What a form costs a model: its worst accuracy change over the measured datasets
    and seeds (points; negative is a loss) and its lowest agreement with fp32."""

    delta_points: float
    agreement: float
    runs: int
    datasets: tuple[str, ...]

    def text(self) -> str:
        return (f"accuracy {self.delta_points:+.2f} points vs fp32, top-1 agreement "
                f"{self.agreement:.1%} (worst of {self.runs} run{'s' * (self.runs > 1)} on "
                f"{', '.join(self.datasets)})")


def costs(acc: pd.DataFrame | None) -> dict[tuple[str, str], Cost]:
    """``{(model, form): Cost}`` of an accuracy frame (``load``)."""
    if acc is None or acc.empty:
        return {}
    return {(model, form): Cost(float(g["delta_points"].min()), float(g["agreement"].min()),
                                len(g), tuple(sorted(set(g["dataset"]))))
            for (model, form), g in acc.groupby(["model", "form"], sort=False)}


def verdict(model: str, precision: str, compile: str, known: dict[tuple[str, str], Cost],
            max_drop: float) -> tuple[bool, str | None]:
    """(whether the variant may be recommended, what to say about its accuracy)."""
    form = form_of(precision, compile)
    cost = known.get((model, form))
    if cost is None:
        if form in QUANTIZED:
            return False, (f"its accuracy cost is not measured for {model} (resnets "
                           f"accuracy); a quantized variant is not recommended unmeasured")
        return True, None
    if cost.delta_points < -max_drop:
        return False, f"{cost.text()}: more than {points(max_drop)} below fp32"
    return True, cost.text()


def accuracy_table(acc: pd.DataFrame) -> pd.DataFrame:
    """The report's table: per model, dataset and form, over seeds, the test accuracy
    (median), the change from fp32 in points (median and worst) and top-1 agreement
    with fp32 (lowest)."""
    if acc is None or acc.empty:
        return pd.DataFrame()
    rows = []
    order = {f: i for i, f in enumerate(FORMS)}
    for (model, dataset, form), g in sorted(
            acc.groupby(["model", "dataset", "form"]), key=lambda kv: (*kv[0][:2],
                                                                     order[kv[0][2]])):
        rows.append({"model": model, "dataset": dataset, "form": form,
                     "evaluated as": g["variant"].iloc[0], "seeds": len(g),
                     "test accuracy": f"{g['test_acc'].median():.2%}",
                     "vs fp32 (points)": "—" if form == REFERENCE else
                     f"{g['delta_points'].median():+.2f} (worst {g['delta_points'].min():+.2f})",
                     "agreement with fp32": "—" if form == REFERENCE else
                     f"{g['agreement'].min():.2%}"})
    return pd.DataFrame(rows)
