"""A run folder's crash journal: which case was being measured when its process died.

Before a case is measured, a note is written under ``RUN/attempts/``: the record it would
get had it crashed. Its result file replaces the note; an interruption (Ctrl-C, SIGTERM)
removes it, so a resume measures the case again. A note left behind means the process
died while measuring (a segfault, the OOM killer): ``recover`` records such a case as
crashed, once, and ``--resume`` does not retry it unless asked. Torch-free.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from . import files, store
from .errors import UserError
from .schema import Result, SchemaError, Status, from_dict

ATTEMPTS_DIR = "attempts"


class Journal:
    def __init__(self, run_dir: Path):
        self.folder = Path(run_dir) / ATTEMPTS_DIR
        self.run_dir = Path(run_dir)

    def _note(self, name: str) -> Path:
        return self.folder / f"{store.safe_name(name)}.json"

    @contextlib.contextmanager
    def attempt(self, record: Result):
        """Mark ``record``'s case as being measured while the block runs (see the module
        docstring); an interruption removes the mark."""
        store.atomic_write_text(self._note(record.name), store.dumps({
            "record": record.to_dict(), "pid": os.getpid(), "started": store.utc_now_iso()}))
        try:
            yield
        except KeyboardInterrupt:  # and SIGTERM (children.Interrupted)
            self.clear(record.name)
            raise

    def clear(self, name: str) -> None:
        """The case's result is written (or it was interrupted): no crash to record."""
        self._note(name).unlink(missing_ok=True)

    def leftover(self) -> list[dict]:
        """Notes whose process died: ``[{"record", "pid", "started"}]``; unreadable ones
        are dropped."""
        out = []
        for path in files.walk(self.folder) if self.folder.is_dir() else []:
            try:
                note = files.read_json(path)
                if isinstance(note, dict) and isinstance(note.get("record"), dict):
                    out.append(note)
                    continue
            except UserError:
                pass
            path.unlink(missing_ok=True)
        return out

    def recover(self) -> set[str]:
        """Record each case whose process died while it ran as crashed (once), and return
        the names of every crashed result in the run folder."""
        finished = store.finished_case_ids(self.run_dir)
        for note in self.leftover():
            try:
                record = from_dict(note["record"])
            except SchemaError:
                continue
            if record.name not in finished:
                record.status = Status.CRASHED
                record.error = (f"the process (PID {note.get('pid')}) died while measuring it, "
                                f"started {note.get('started')}")
                store.write_case(self.run_dir, store.benchmark_entry(record), {}, {})
            self.clear(record.name)
        return store.case_ids(self.run_dir, {Status.CRASHED})
