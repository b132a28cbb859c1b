"""The job record: RQ's job hash layout, written and read by jobctl without RQ's Job class.

A job is stored as RQ 2.x stores one (`rq:job:<id>`, `data` = zlib-compressed JSON of
`[func_name, None, args, kwargs]`, RQ's timestamp format and status words), so RQ's tools read
it; jobctl's own bookkeeping lives in extra `jobctl_*` fields that RQ ignores. Payloads are JSON,
never pickle, and `func_name` is the registered job name: nothing in a payload is importable.
"""

from __future__ import annotations

import json
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

STATES = ("queued", "scheduled", "deferred", "started", "finished", "dead", "canceled")

# RQ's status words -> jobctl's states. RQ calls the dead set "failed".
_STATE_OF_RQ_STATUS = {
    "created": "queued",
    "queued": "queued",
    "scheduled": "scheduled",
    "deferred": "deferred",
    "started": "started",
    "finished": "finished",
    "failed": "dead",
    "stopped": "dead",
    "canceled": "canceled",
}
RQ_STATUS = {"dead": "failed"}  # every other state is spelled the same in RQ

_RQ_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def new_job_id() -> str:
    return str(uuid.uuid4())


def rq_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).strftime(_RQ_TIME_FORMAT)


def parse_rq_time(text: str | bytes | None) -> float | None:
    if not text:
        return None
    if isinstance(text, bytes):
        text = text.decode()
    return datetime.strptime(text, _RQ_TIME_FORMAT).replace(tzinfo=timezone.utc).timestamp()


def encode_payload(name: str, args: list, kwargs: dict) -> bytes:
    return zlib.compress(json.dumps([name, None, list(args), dict(kwargs)]).encode())


def decode_payload(data: bytes) -> tuple[str, list, dict]:
    try:
        raw = zlib.decompress(data)
    except zlib.error:
        raw = data  # RQ also accepts an uncompressed payload
    name, _instance, args, kwargs = json.loads(raw)
    return name, list(args or ()), dict(kwargs or {})


def encode_result(value: Any) -> bytes:
    try:
        return json.dumps(value).encode()
    except (TypeError, ValueError):
        return json.dumps(repr(value)).encode()


def new_job_fields(
    name: str,
    args: list,
    kwargs: dict,
    queue: str,
    *,
    now: float,
    timeout: float,
    result_ttl: float,
    failure_ttl: float,
    max_retries: int,
    crash_limit: int,
    allow_failure: bool = False,
    description: str | None = None,
) -> dict[str, Any]:
    """The hash fields of a job about to be stored; the enqueue script sets its status. Fields
    RQ writes empty (callbacks, worker, start and end times) are left out: RQ reads them as unset."""
    created = rq_time(now)
    return {
        "created_at": created,
        "enqueued_at": created,
        "data": encode_payload(name, args, kwargs),
        "origin": queue,
        "description": description or describe(name, args, kwargs),
        "timeout": int(timeout),
        "result_ttl": int(result_ttl),
        "failure_ttl": int(failure_ttl),
        "meta": b"{}",
        "jobctl_job": name,
        "jobctl_max_retries": max_retries,
        "jobctl_attempts": 0,
        "jobctl_crash_limit": crash_limit,
        "jobctl_allow_failure": int(allow_failure),
    }


def describe(name: str, args: list, kwargs: dict) -> str:
    """RQ's job description: the call as text, as `rq info` and rq-dashboard show it."""
    parts = [json.dumps(a) for a in args] + [f"{k}={json.dumps(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def _text(raw: dict[bytes, bytes], key: str) -> str | None:
    value = raw.get(key.encode())
    return value.decode() if value else None


def _number(raw: dict[bytes, bytes], key: str, kind=float):
    value = raw.get(key.encode())
    return kind(value) if value not in (None, b"") else None


@dataclass
class JobView:
    """One job as every front end shows it (`show`, `enqueue --json`, `status`)."""

    id: str
    job: str
    queue: str
    state: str
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    attempts: int = 0
    max_retries: int = 0
    errors: list[dict] = field(default_factory=list)
    crashes: int = 0
    progress: float | None = None
    progress_message: str | None = None
    result: Any = None
    error: str | None = None
    reason: str | None = None
    worker: str | None = None
    created_at: float | None = None
    enqueued_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    scheduled_for: float | None = None
    timeout: float | None = None
    depends_on: list[str] = field(default_factory=list)
    dependents: list[str] = field(default_factory=list)

    @classmethod
    def from_hash(cls, job_id: str, raw: dict[bytes, bytes]) -> "JobView":
        name, args, kwargs = decode_payload(raw[b"data"])
        result_raw = raw.get(b"result")
        exc = raw.get(b"exc_info")
        errors = json.loads(raw.get(b"jobctl_errors") or b"[]")
        return cls(
            id=job_id,
            job=name,
            queue=_text(raw, "origin") or "",
            state=_STATE_OF_RQ_STATUS.get(_text(raw, "status") or "queued", "queued"),
            args=args,
            kwargs=kwargs,
            attempts=_number(raw, "jobctl_attempts", int) or 0,
            max_retries=_number(raw, "jobctl_max_retries", int) or 0,
            errors=errors,
            crashes=_number(raw, "jobctl_crashes", int) or 0,
            progress=_number(raw, "jobctl_progress"),
            progress_message=_text(raw, "jobctl_progress_message"),
            result=json.loads(result_raw) if result_raw else None,
            error=zlib.decompress(exc).decode() if exc else None,
            reason=_text(raw, "jobctl_reason"),
            worker=_text(raw, "worker_name"),
            created_at=parse_rq_time(raw.get(b"created_at")),
            enqueued_at=parse_rq_time(raw.get(b"enqueued_at")),
            started_at=parse_rq_time(raw.get(b"started_at")),
            ended_at=parse_rq_time(raw.get(b"ended_at")),
            scheduled_for=_number(raw, "jobctl_scheduled_for"),
            timeout=_number(raw, "timeout"),
        )

    @property
    def last_error_line(self) -> str | None:
        if self.errors:
            return self.errors[-1].get("error")
        return self.reason

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        if self.state != "finished":
            data.pop("result")
        return data
