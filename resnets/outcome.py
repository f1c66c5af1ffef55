"""How an attempt to measure a case ended: one type and one serialisation, torch-free.

Every way a case runs (in process, an isolated worker, the gate's pair worker, each
torchrun rank) ends in an ``Outcome``: ``ok`` with its record, or ``skipped`` (cannot run
here), ``failed`` (raised an error) or ``crashed`` (its process died) with the reason.
Its JSON form is the worker protocol's reply, ``{"outcome": "ok", "record": ...,
"samples": [...]}`` or ``{"outcome": ..., "reason": ...}``, which stays stable: the gate
runs the merge-base's worker beside the head's.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from .schema import Result, SchemaError, SpeedResult, Status, from_dict

OK, SKIPPED, FAILED, CRASHED = "ok", "skipped", "failed", "crashed"
STATUSES = (OK, SKIPPED, FAILED, CRASHED)


@dataclass(frozen=True)
class Outcome:
    status: str
    record: Result | None = None    # when ok
    reason: str | None = None       # when not

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"unknown outcome {self.status!r}")
        if (self.status == OK) != (self.record is not None):
            raise ValueError("an ok outcome has a record, and only an ok one")

    @classmethod
    def ok(cls, record: Result) -> Outcome:
        return cls(OK, record=record)

    @classmethod
    def skipped(cls, reason: str) -> Outcome:
        return cls(SKIPPED, reason=reason)

    @classmethod
    def failed(cls, reason: str) -> Outcome:
        return cls(FAILED, reason=reason)

    @classmethod
    def of_error(cls, exc: BaseException) -> Outcome:
        """A failure from an exception: its type and first line."""
        text = str(exc).strip().splitlines()
        return cls.failed(f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": "))

    @property
    def is_ok(self) -> bool:
        return self.status == OK

    def result(self, case) -> Result:
        """The record to write for ``case``: the measurement, or one that says why there
        is none."""
        if self.record is not None:
            return self.record
        return SpeedResult(case=case, status=Status(self.status), error=self.reason)

    def to_dict(self) -> dict:
        if self.record is not None:
            return {"outcome": OK, "record": self.record.to_dict(),
                    "samples": list(self.record.samples)}
        return {"outcome": self.status, "reason": self.reason}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_dict(cls, d) -> Outcome:
        """Raises ``SchemaError`` for anything that is not an outcome."""
        if not isinstance(d, dict) or d.get("outcome") not in STATUSES:
            raise SchemaError(f"not an outcome: {str(d)[:80]!r}")
        if d["outcome"] == OK:
            return cls.ok(from_dict(d.get("record"), d.get("samples") or []))
        return cls(d["outcome"], reason=str(d.get("reason") or "no reason given"))

    @classmethod
    def from_json(cls, line: str) -> Outcome:
        try:
            d = json.loads(line)
        except (ValueError, RecursionError):
            raise SchemaError(f"not JSON: {line[:80]!r}") from None
        return cls.from_dict(d)
