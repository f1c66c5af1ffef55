"""Result files: one pytest-benchmark-format JSON document per finished case.

Written atomically (temp file in the same folder, fsync, rename), as soon as the case
ends, so a run that is killed keeps every case it finished and a reader never sees half
a file. Each document is a valid pytest-benchmark JSON file holding one benchmark, so
``resnets report``/``compare`` read a run folder and a ``--benchmark-json`` file alike.
Torch-free.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Callable

CASES_DIR = "cases"
# Version of the meaning of a result's extra_info; readers refuse versions they don't know.
SCHEMA_VERSION = 1


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Let ``write(tmp_path)`` fill a temporary file beside ``path``, then rename it into
    place, so nobody ever reads half a file. The suffix is kept (exporters pick the format
    by it) and the file gets the usual permissions (mkstemp alone would leave 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                               suffix="".join(path.suffixes) + ".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def benchmark_entry(name: str, case_id: str, extra_info: dict, stats: dict | None,
                    group: str | None = None, fullname: str | None = None,
                    params: dict | None = None, options: dict | None = None) -> dict:
    """One element of pytest-benchmark's ``benchmarks`` list (``stats`` None if it failed)."""
    return {"group": group, "name": name, "fullname": fullname or name,
            "params": params, "param": case_id, "extra_info": extra_info,
            "options": options or {}, "stats": stats}


def write_case(run_dir: Path, entry: dict, machine_info: dict, commit_info: dict,
               version: str = "") -> Path:
    doc = {"machine_info": machine_info, "commit_info": commit_info, "benchmarks": [entry],
           "datetime": _dt.datetime.now(_dt.timezone.utc).isoformat(), "version": version}
    path = case_path(run_dir, entry["param"])
    atomic_write_text(path, json.dumps(doc, indent=1, default=str))
    return path


def finished_case_ids(run_dir: Path) -> set[str]:
    """Case ids with a successful result in ``run_dir`` (what ``--resume`` skips)."""
    done = set()
    for path in (Path(run_dir) / CASES_DIR).glob("*.json"):
        try:
            for b in json.loads(path.read_text()).get("benchmarks", []):
                if (b.get("extra_info") or {}).get("status") in ("ok", "reached", "not_reached", "diverged"):
                    done.add(b["param"])
        except (OSError, ValueError, KeyError, AttributeError):
            continue  # unreadable: run it again
    return done
