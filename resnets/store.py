"""Result files and run folders: one pytest-benchmark-format JSON document per case.

Written atomically (temp file in the same folder, fsync, rename), as soon as the case
ends, so a run that is killed keeps every case it finished and a reader never sees half
a file. Each document is a valid pytest-benchmark JSON file holding one benchmark whose
``extra_info`` is a ``schema`` record, so ``resnets report``/``compare`` read a run folder
and a ``--benchmark-json`` file alike. Also the run id and UTC timestamps every output
folder is named by. Torch-free.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from .schema import FINISHED, STATUS, Result
from .stats import Measurement

CASES_DIR = "cases"
REPORTS_DIR = Path("reports")  # where every command writes by default


def utc_stamp(when: _dt.datetime | None = None) -> str:
    """``20261125T211347Z``: sorts by time, safe in a file name."""
    return (when or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def utc_now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


def run_id() -> str:
    """A run folder's name: UTC time plus short commit (sorts by time, says which code)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{utc_stamp()}-{sha}" if sha else utc_stamp()


def default_out(kind: str, name: str | None = None) -> Path:
    """``reports/<kind>-<name or UTC stamp>``: where a command writes unless told."""
    return REPORTS_DIR / f"{kind}-{name or utc_stamp()}"


def writable(out: Path, flag: str = "-o") -> None:
    """Refuse, before any work, an output folder that cannot be written: the nearest
    existing folder of ``out`` must take a file (tried for real and removed, since
    ``os.access`` says yes to root even in /proc). Nothing is created on the way."""
    from .errors import UserError

    out = Path(out)
    existing = next(p for p in [out, *out.parents] if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise UserError(f"{flag} {out}: cannot write there ({existing} is not a folder)")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".resnets-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{flag} {out}: cannot write there ({existing}: "
                        f"{exc.strerror or exc})") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Let ``write(tmp_path)`` fill a temporary file beside ``path``, then rename it into
    place, so nobody ever reads half a file. The suffix is kept (exporters pick the format
    by it) and the file gets the usual permissions (mkstemp alone would leave 0600). An
    error names ``path``, not the hidden temporary file."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                   suffix="".join(path.suffixes) + ".tmp")
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
    finally:
        if tmp is not None and Path(tmp).exists():
            Path(tmp).unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def safe_name(case_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", case_id)


def case_path(run_dir: Path, case_id: str) -> Path:
    return Path(run_dir) / CASES_DIR / f"{safe_name(case_id)}.json"


def benchmark_entry(record: Result, name: str | None = None, group: str | None = None,
                    fullname: str | None = None, params: dict | None = None) -> dict:
    """One element of pytest-benchmark's ``benchmarks`` list: the record as ``extra_info``
    and its samples as the statistics (``stats`` None when it has none, e.g. it failed)."""
    stats = Measurement(tuple(record.samples)).pytest_benchmark_stats() if record.samples else None
    name = name or record.name
    return {"group": group, "name": name, "fullname": fullname or name, "params": params,
            "param": record.name, "extra_info": record.to_dict(), "options": {},
            "stats": stats}


def dumps(doc) -> str:
    """JSON as every writer here writes it: strict (no NaN/Infinity, which strict parsers
    reject), a non-finite number written as null ("no value", as records hold it)."""
    return json.dumps(_finite(doc), indent=1, allow_nan=False, default=str)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_case(run_dir: Path, entry: dict, machine_info: dict, commit_info: dict,
               version: str = "") -> Path:
    doc = {"machine_info": machine_info, "commit_info": commit_info, "benchmarks": [entry],
           "datetime": utc_now_iso(), "version": version}
    path = case_path(run_dir, entry["param"])
    atomic_write_text(path, dumps(doc))
    return path


def case_ids(run_dir: Path, statuses) -> set[str]:
    """Names of the results in ``run_dir`` whose status is in ``statuses``; an unreadable
    file counts as none, so its case runs again."""
    from .errors import UserError
    from .files import read_json, walk

    found = set()
    folder = Path(run_dir) / CASES_DIR
    for path in walk(folder) if folder.is_dir() and not folder.is_symlink() else []:
        try:
            for b in read_json(path).get("benchmarks", []):
                if (b.get("extra_info") or {}).get(STATUS) in statuses:
                    found.add(str(b["param"]))
        except (UserError, KeyError, AttributeError, TypeError):
            continue
    return found


def finished_case_ids(run_dir: Path) -> set[str]:
    """Names of the finished results in ``run_dir`` (what ``--resume`` skips)."""
    return case_ids(run_dir, FINISHED)
