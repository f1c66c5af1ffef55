"""Load result files into one tidy pandas DataFrame (torch-free).

Accepts pytest-benchmark JSON files (``--benchmark-json``, ``.benchmarks/`` autosaves),
run folders written by ``resnets run`` (their ``cases/*.json``), folders of JSON files,
and globs. One row per case and run; columns for every config field, every scalar
metric, the timing statistics, the run's environment (``env_*``), commit and time, and
the raw per-step samples (``samples``, seconds). Anything unreadable is a ``ResultsError``
naming the file and the problem, in one line.
"""
from __future__ import annotations

import glob
import json
from dataclasses import fields
from pathlib import Path

import pandas as pd

from .errors import UserError
from .measure.case import Case
from .store import CASES_DIR, SCHEMA_VERSION



# The config columns of every row: exactly the fields of a Case.
CONFIG_FIELDS = tuple(f.name for f in fields(Case))


class ResultsError(UserError):
    """A result file that can't be read, in one line that names it."""


def _folder_files(p: Path) -> list[Path]:
    cases = p / CASES_DIR
    return sorted(cases.glob("*.json")) if cases.is_dir() else sorted(p.rglob("*.json"))


def expand(paths) -> list[Path]:
    """Files behind ``paths``: files as given, folders searched, globs expanded.

    What a user names explicitly must hold results; what a glob merely matches may not
    (``reports/*`` also matches reports/README.md and report-only folders): those are
    skipped, and only a glob that yields no result file at all is an error."""
    files: list[Path] = []
    for raw in [paths] if isinstance(paths, (str, Path)) else paths:
        p = Path(raw)
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            found = _folder_files(p)
            if not found:
                raise ResultsError(f"{p}: no result files (*.json) in this folder")
            files += found
        else:
            matches = [Path(m) for m in sorted(glob.glob(str(raw), recursive=True))]
            found = [f for m in matches
                     for f in ([m] if m.is_file() and m.suffix == ".json" else
                               _folder_files(m) if m.is_dir() else [])]
            if not found:
                what = "no result files" if matches else "no such file, folder or glob match"
                raise ResultsError(f"{raw}: {what}")
            files += found
    return list(dict.fromkeys(files))


def read_document(path: Path) -> dict:
    """Parse and validate one pytest-benchmark JSON file of resnets results."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not text.strip():
        raise ResultsError(f"{path}: empty file")
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ResultsError(f"{path}: not valid JSON, truncated or corrupt ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ResultsError(f"{path}: not pytest-benchmark output (no 'benchmarks' list)")
    ours = [b for b in doc["benchmarks"]
            if isinstance(b, dict) and isinstance(b.get("extra_info"), dict)
            and "schema_version" in b["extra_info"]]
    if doc["benchmarks"] and not ours:
        raise ResultsError(f"{path}: not a resnets result file "
                           "(no benchmark has extra_info.schema_version)")
    for b in ours:
        version = b["extra_info"]["schema_version"]
        if version != SCHEMA_VERSION:
            raise ResultsError(f"{path}: unknown schema_version {version!r} "
                               f"(this resnets reads {SCHEMA_VERSION})")
    # Other benchmarks in the file (e.g. the suite's tooling benchmarks) are not cases.
    doc["benchmarks"] = ours
    return doc


def run_name(path: Path) -> str:
    """A run is a ``resnets run`` folder (for its ``cases/*.json``) or a single file."""
    path = Path(path)
    return path.parent.parent.name if path.parent.name == CASES_DIR else path.stem


def _rows(path: Path, doc: dict) -> list[dict]:
    machine = doc.get("machine_info") or {}
    commit = doc.get("commit_info") or {}
    rows = []
    for b in doc["benchmarks"]:
        extra = dict(b["extra_info"])
        env = extra.pop("env", None) or machine.get("resnets_env") or {}
        timing = extra.pop("timing", None) or {}
        row = {k: v for k, v in extra.items() if not isinstance(v, (dict, list))}
        if "input_shape" in extra:
            row["input_shape"] = "x".join(map(str, extra["input_shape"]))
        row["nested"] = {k: v for k, v in extra.items() if isinstance(v, (dict, list))
                         and k != "input_shape"}
        settings = timing.pop("settings", None) or {}
        row.update({f"timing_{k}": v for k, v in timing.items() if not isinstance(v, (dict, list))})
        row.update({f"setting_{k}": v for k, v in settings.items() if not isinstance(v, (dict, list))})
        row.update({f"env_{k}": v for k, v in env.items() if not isinstance(v, (dict, list))})
        stats = b.get("stats") or {}
        row["samples"] = list(stats.get("data") or [])
        row.update(run=run_name(path), source=str(path), datetime=doc.get("datetime"),
                   commit_id=commit.get("id"), commit_time=commit.get("time"),
                   commit_branch=commit.get("branch"), commit_dirty=commit.get("dirty"),
                   benchmark_name=b.get("name"))
        rows.append(row)
    return rows


def load(paths) -> pd.DataFrame:
    """One row per (run, case). See the module docstring for what ``paths`` may be."""
    rows = []
    for path in expand(paths):
        rows += _rows(path, read_document(path))
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["datetime"] = pd.to_datetime(df["datetime"], utc=True, errors="coerce", format="ISO8601")
    df["run_time"] = df.groupby("run")["datetime"].transform("min")
    # A case appears once per run; convergence runs repeat a case over seeds (run_id).
    key = ["run", "case_id", *(["run_id"] if "run_id" in df else [])]
    df = df.drop_duplicates(subset=key, keep="last").reset_index(drop=True)
    return df
