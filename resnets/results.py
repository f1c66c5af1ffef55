"""Load result files into one tidy pandas DataFrame (torch-free).

Accepts pytest-benchmark JSON files (``--benchmark-json``, ``.benchmarks/`` autosaves),
run folders written by ``resnets run`` (their ``cases/*.json``), folders of JSON files,
and globs. Each benchmark's ``extra_info`` is read back as a ``schema`` record, so the
frame's columns are the record's (``schema.columns()``) plus where the row came from
(``schema.RUN_COLUMNS``) and the raw per-step ``samples`` (seconds).

A file the user names that cannot be read is a ``ResultsError`` naming it, in one line.
A damaged file inside a folder or glob (a run killed while a disk filled up, say) is
skipped with a one-line warning and listed in ``df.attrs["corrupt"]``, so one bad case
never costs the others; ``strict=True`` refuses it instead.
"""
from __future__ import annotations

import glob
import json
import re
import sys
from functools import lru_cache
from pathlib import Path

import pandas as pd

from .errors import UserError
from .schema import CASE_ID, RUN_COLUMNS, SchemaError, columns, from_dict
from .store import CASES_DIR
from .text import printable

# A result file larger than this is refused unread: a case file is a few hundred KiB.
MAX_FILE_BYTES = 256 * 2 ** 20


class ResultsError(UserError):
    """A result file that can't be read, in one line that names it."""


def _folder_files(p: Path) -> list[Path]:
    """A run folder's case files; a folder of run folders (or of a run's shards) gives
    all their case files; any other folder, its JSON files."""
    cases = p / CASES_DIR
    if cases.is_dir():
        return sorted(cases.glob("*.json"))
    nested = sorted(p.rglob(f"{CASES_DIR}/*.json"))
    return nested or sorted(p.rglob("*.json"))


def expand(paths) -> list[tuple[Path, bool]]:
    """``(file, named)`` behind ``paths``: files as given (named), folders searched and
    globs expanded (found).

    What a user names explicitly must hold results; what a glob merely matches may not
    (``reports/*`` also matches reports/README.md and report-only folders): those are
    skipped, and only a glob that yields no result file at all is an error."""
    files: dict[Path, bool] = {}
    for raw in [paths] if isinstance(paths, (str, Path)) else paths:
        p = Path(raw)
        if p.is_file():
            files.setdefault(p, True)
        elif p.is_dir():
            found = _folder_files(p)
            if not found:
                raise ResultsError(f"{p}: no result files (*.json) in this folder")
            for f in found:
                files.setdefault(f, False)
        else:
            matches = [Path(m) for m in sorted(glob.glob(str(raw), recursive=True))]
            found = [f for m in matches
                     for f in ([m] if m.is_file() and m.suffix == ".json" else
                               _folder_files(m) if m.is_dir() else [])]
            if not found:
                what = "no result files" if matches else "no such file, folder or glob match"
                raise ResultsError(f"{raw}: {what}")
            for f in found:
                files.setdefault(f, False)
    return list(files.items())


def read_document(path: Path) -> dict:
    """Parse one pytest-benchmark JSON file and check its shape (not yet its records)."""
    try:
        if Path(path).stat().st_size > MAX_FILE_BYTES:
            raise ResultsError(f"{path}: larger than {MAX_FILE_BYTES // 2 ** 20} MiB; "
                               "not a result file")
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ResultsError(f"{path}: not text (binary or not UTF-8); not a result file") from None
    if not text.strip():
        raise ResultsError(f"{path}: empty file")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ResultsError(f"{path}: not valid JSON, truncated or corrupt "
                           f"({str(exc)[:200]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ResultsError(f"{path}: not pytest-benchmark output (no 'benchmarks' list)")
    for key in ("machine_info", "commit_info"):
        if not isinstance(doc.get(key) or {}, dict):
            raise ResultsError(f"{path}: '{key}' is not an object")
    return doc


SHARD_FOLDER = re.compile(r"shard-\d+-of-\d+")


def run_folder(path: Path) -> Path | None:
    """The ``resnets run`` folder a case file is in (``RUN/cases/x.json``), or None."""
    path = Path(path)
    return path.parent.parent if path.parent.name == CASES_DIR else None


def run_name(path: Path) -> str:
    """A run is a ``resnets run`` folder (for its ``cases/*.json``) or a single file. The
    shards of one run (``RUN/shard-K-of-N/``, see ``--shard``) are that one run."""
    folder = run_folder(path)
    if folder is None:
        return Path(path).stem
    return folder.parent.name if SHARD_FOLDER.fullmatch(folder.name) else folder.name


@lru_cache(maxsize=1024)
def run_complete(folder: Path | None) -> bool | None:
    """Whether the run folder's ``run-state.json`` says every planned case was
    attempted (None: no record, e.g. a single file or an older run)."""
    if folder is None:
        return None
    try:
        state = json.loads((folder / "run-state.json").read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return bool(state.get("complete")) if isinstance(state, dict) else None


def _rows(path: Path, doc: dict) -> list[dict]:
    """One row per resnets benchmark in ``doc`` (others, e.g. tooling benchmarks, are not
    cases and are left out; a file with benchmarks but none of ours is an error)."""
    ours = [b for b in doc["benchmarks"] if isinstance(b, dict)
            and isinstance(b.get("extra_info"), dict) and "schema_version" in b["extra_info"]]
    if doc["benchmarks"] and not ours:
        raise ResultsError(f"{path}: not a resnets result file "
                           "(no benchmark has extra_info.schema_version)")
    commit = doc.get("commit_info") or {}
    machine_env = (doc.get("machine_info") or {}).get("resnets_env")
    rows = []
    for b in ours:
        extra = b["extra_info"]
        if not isinstance(extra.get("env"), dict) and isinstance(machine_env, dict):
            extra = {**extra, "env": machine_env}  # older autosaves kept env per run only
        stats = b.get("stats") if isinstance(b.get("stats"), dict) else {}
        try:
            record = from_dict(extra, stats.get("data") or [])
        except SchemaError as exc:
            raise ResultsError(f"{path}: {exc}") from None
        row = record.row()
        row.update(run=run_name(path), run_complete=run_complete(run_folder(path)),
                   source=str(path), datetime=doc.get("datetime"),
                   commit_id=commit.get("id"), commit_time=commit.get("time"),
                   commit_branch=commit.get("branch"), commit_dirty=commit.get("dirty"),
                   benchmark_name=b.get("name"))
        rows.append(row)
    return rows


def frame(rows: list[dict]) -> pd.DataFrame:
    """The frame of ``rows`` (``Result.row()`` plus run columns), with every schema and
    run column present (missing values NaN), so readers never test for a column."""
    df = pd.DataFrame(rows, columns=list(dict.fromkeys(
        [*columns(), *RUN_COLUMNS, *(k for r in rows for k in r)])))
    if df.empty:
        return df
    df["datetime"] = pd.to_datetime(df["datetime"], utc=True, errors="coerce", format="ISO8601")
    df["run"] = df["run"].astype(object).fillna("")
    df["run_time"] = df.groupby("run")["datetime"].transform("min")
    return df


def load(paths, strict: bool = False) -> pd.DataFrame:
    """One row per (run, result). See the module docstring for what ``paths`` may be."""
    rows, corrupt = [], []
    for path, named in expand(paths):
        try:
            rows += _rows(path, read_document(path))
        except ResultsError as exc:
            if named or strict:
                raise
            corrupt.append((str(path), str(exc)))
            print(f"resnets: warning: skipped {printable(exc)}", file=sys.stderr)
    df = frame(rows)
    if not df.empty:
        # A result appears once per run; convergence runs repeat a case over seeds.
        key = ["run", CASE_ID, "trial_id"]
        df = df.drop_duplicates(subset=key, keep="last").reset_index(drop=True)
    df.attrs["corrupt"] = corrupt
    if df.empty and corrupt and not rows:
        raise ResultsError(f"{len(corrupt)} result file(s) found, none readable: {corrupt[0][1]}")
    return df

