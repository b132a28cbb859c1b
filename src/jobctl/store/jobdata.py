"""The job record: RQ's job hash layout, written and read by jobctl without RQ's Job class.

A job is stored as RQ 2.x stores one (`rq:job:<id>`, `data` = zlib-compressed JSON of
`[func_name, None, args, kwargs]`, RQ's timestamp format and status words), so RQ's tools read
it; jobctl's own bookkeeping lives in extra `jobctl_*` fields that RQ ignores. Payloads are JSON,
and `func_name` is the registered job name: nothing in a payload is importable. The exception:
queues with `engine: rq` are served by RQ's own workers, and their payloads are RQ's (pickled,
unless the queue says `serializer: json`), naming functions by import path; jobctl unpickles
them only for such queues (QueueConfig.trusts_pickle).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import os
import pickle
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, overload

from ..errors import PayloadError as PayloadError  # re-exported: the worker imports these two from here
from ..errors import ResultError as ResultError

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
    return new_job_ids(1)[0]


def new_job_ids(count: int) -> list[str]:
    """`count` random (version 4) UUIDs, as RQ's ids are: uuid.uuid4()'s text, from one read of
    the system's randomness for all of them (a fraction of uuid4's cost: enqueue_many makes one
    for each job)."""
    text = os.urandom(16 * count).hex()
    return [
        f"{text[i : i + 8]}-{text[i + 8 : i + 12]}-4{text[i + 13 : i + 16]}-"  # the version: 4
        f"{_VARIANT[text[i + 16]]}{text[i + 17 : i + 20]}-{text[i + 20 : i + 32]}"
        for i in range(0, 32 * count, 32)
    ]


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}  # RFC 4122's variant


def rq_time(moment: float) -> str:
    """`moment` in RQ's format (_RQ_TIME_FORMAT), exactly as datetime.fromtimestamp(moment, UTC)
    gives it; the date and time of day are formatted once per second (a worker writes one or two
    such times per job), the microseconds rounded as fromtimestamp rounds them (half to even)."""
    global _second
    fraction, whole = math.modf(moment)
    micro = round(fraction * 1e6)
    if micro >= 1_000_000:
        micro, whole = micro - 1_000_000, whole + 1
    elif micro < 0:
        micro, whole = micro + 1_000_000, whole - 1
    second, text = _second
    if whole != second:
        text = datetime.fromtimestamp(whole, UTC).isoformat()[:19]
        _second = (whole, text)
    return f"{text}.{micro:06d}Z"


_second = (math.nan, "")  # rq_time's last second: (unix time, its text up to the second)


# RQ's utcparse reads both: its own format, and the one without microseconds of older records
_RQ_TIME_FORMATS = (_RQ_TIME_FORMAT, "%Y-%m-%dT%H:%M:%SZ")


def parse_rq_time(text: str | bytes | None) -> float | None:
    """Unix time of a timestamp in RQ's formats; None when missing or not one of them (a reader
    shows an unknown time rather than fail on a record another tool wrote)."""
    moment = text_value(text)
    for form in _RQ_TIME_FORMATS:
        try:
            return datetime.strptime(moment or "", form).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


def text_value(value: str | bytes | None) -> str | None:
    """A field's text, None when missing or empty; bytes that are not UTF-8 are shown replaced."""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return value or None


@overload
def number_value(value: bytes | str | None) -> float | None: ...
@overload
def number_value(value: bytes | str | None, kind: type[int]) -> int | None: ...
def number_value(value: bytes | str | None, kind: type[float] | type[int] = float) -> float | None:
    """A field's number, None when missing, not a number, infinite or NaN."""
    try:
        number = float(value or "nan")
    except (TypeError, ValueError):
        return None
    return kind(number) if math.isfinite(number) else None


def _serialized(value: Any, serializer: str) -> bytes:
    """`value` as RQ's DefaultSerializer (pickle) or JSONSerializer writes it."""
    if serializer == "pickle":
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return json.dumps(value).encode()


def encode_payload(name: str, args: Iterable[Any], kwargs: Mapping[str, Any], serializer: str = "json") -> bytes:
    """RQ's `data` field: (func_name, instance, args, kwargs), serialized, zlib-compressed."""
    return compress(_serialized((name, None, list(args), dict(kwargs)), serializer))


_STORED = 128  # bytes of a payload below which deflating saves next to nothing
_SMALL = 4096  # bytes of a payload compressed with a window of its size


def compress(raw: bytes) -> bytes:
    """`raw` in zlib's format, as RQ reads `data` (zlib.decompress). A payload of a few arguments
    is stored as one uncompressed deflate block: deflating it saves a few bytes and costs the
    setup of a compressor, the largest part of building a job for enqueue_many. A small one gets
    a small window and hash table: at zlib.compress's defaults each call allocates ~270 KB, which
    glibc may serve by mmap and give back at once, page faults included (2 µs or 50 µs a call,
    depending on the process's past)."""
    if len(raw) < _STORED:
        block = struct.pack("<BHH", 1, len(raw), len(raw) ^ 0xFFFF)  # final block, stored
        return b"\x78\x01" + block + raw + struct.pack(">I", zlib.adler32(raw))
    if len(raw) > _SMALL:
        return zlib.compress(raw)
    packer = zlib.compressobj(6, zlib.DEFLATED, 12, 1)
    return packer.compress(raw) + packer.flush()


_PICKLE_PROTOCOL_MARK = 0x80  # the first byte of every pickle of protocol 2 or later


def decode_payload(data: bytes | None, *, trust_pickle: bool = False) -> tuple[str, list[Any], dict[str, Any]]:
    """(job name, args, kwargs) from a job's `data` field; raises PayloadError, never anything
    else, for whatever another tool (or a hand) may have written there. A pickle is unpickled
    only with `trust_pickle` (its queue's QueueConfig.trusts_pickle): unpickling runs code."""
    if not data:
        raise PayloadError("the job record has no payload (its 'data' field is missing or empty)")
    try:
        raw = zlib.decompress(data)
    except zlib.error:
        raw = data  # RQ also accepts an uncompressed payload
    if raw[:1] == bytes([_PICKLE_PROTOCOL_MARK]):
        if trust_pickle:
            try:
                name, _instance, args, kwargs = pickle.loads(raw)
                return str(name), list(args or ()), dict(kwargs or {})
            except Exception as exc:  # noqa: BLE001 - unpickling foreign bytes can raise anything
                raise PayloadError(f"payload is a pickle that cannot be read: {type(exc).__name__}") from None
        raise PayloadError(
            "payload is pickle (RQ's default serializer); jobctl runs JSON jobs: enqueue with "
            "rq.serializers.JSONSerializer, or serve the queue with `engine: rq`"
        )
    try:
        decoded = json.loads(raw)
    except (ValueError, RecursionError):
        raise PayloadError(
            "payload is neither JSON nor zlib-compressed JSON (not written by jobctl or RQ's JSONSerializer)"
        ) from None
    if not (
        isinstance(decoded, list)
        and len(decoded) == 4
        and isinstance(decoded[0], str)
        and decoded[0]
        and isinstance(decoded[2], (list, type(None)))
        and isinstance(decoded[3], (dict, type(None)))
    ):
        raise PayloadError(
            "payload is JSON of the wrong shape (expected [function name, null, args list, kwargs object])"
        )
    name, _instance, args, kwargs = decoded
    return name, list(args or ()), dict(kwargs or {})


def encode_result(value: Any) -> bytes:
    """The job's return value as JSON; raises ResultError when JSON cannot encode it."""
    try:
        return json.dumps(value, allow_nan=False).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        kind = "too deeply nested" if isinstance(exc, RecursionError) else str(exc)
        raise ResultError(
            f"the job's result cannot be stored as JSON ({kind}); return plain data: "
            "dict, list, str, int, float, bool or None"
        ) from None


@dataclass(frozen=True)
class RqOptions:
    """RQ's per-job options of a job RQ's own API enqueued (a `Retry` budget, callbacks), as
    start_next returns them with the job (lua/lib.lua rq_options)."""

    retries_left: int | None = None  # None: no Retry of its own (the queue's retries apply)
    retry_intervals: list[int] | None = None
    on_success: str = ""
    on_failure: str = ""
    on_stopped: str = ""

    @classmethod
    def from_row(cls, fields: list[bytes] | bytes) -> RqOptions:
        """From start_next's row: its RQ options, or b'' for a job RQ's Job never wrote."""
        if not isinstance(fields, list):
            return _NO_RQ_OPTIONS  # frozen: every job without RQ's options shares it
        retries_left, intervals, on_success, on_failure, on_stopped = (f.decode() for f in fields)
        try:
            parsed = json.loads(intervals) if intervals else None
        except ValueError:
            parsed = None
        return cls(
            int(retries_left) if retries_left else None,
            [int(i) for i in parsed] if isinstance(parsed, list) and parsed else None,
            on_success,
            on_failure,
            on_stopped,
        )


_NO_RQ_OPTIONS = RqOptions()


def stream_outcome(entry: dict[bytes, bytes], trust_pickle: bool) -> tuple[Any, str | None]:
    """(return value, traceback) of an entry of RQ's results stream (keys.results): base64 of the
    serializer's bytes, base64 of zlib-compressed text. RQ's workers keep both only there."""
    value, exc = _base64(entry.get(b"return_value")), _base64(entry.get(b"exc_string"))
    return _result(value, trust_pickle), _traceback(exc)


def _base64(value: bytes | None) -> bytes | None:
    try:
        return base64.b64decode(value) if value else None
    except binascii.Error:
        return None


def shared_job_fields(
    name: str,
    queue: str,
    *,
    timeout: float,
    result_ttl: float,
    failure_ttl: float,
    max_retries: int,
    crash_limit: int,
    allow_failure: bool = False,
    serializer: str = "json",
    parents: Sequence[str] = (),
) -> dict[str, Any]:
    """The hash fields that every job of one kind, queue and options shares: all but the call's
    (data, description), its times (created_at, enqueued_at) and its status, which the enqueue
    scripts write. Fields RQ writes empty (callbacks, worker, start and end times) are left out:
    RQ reads them as unset. `serializer`: how the payload and `meta` are serialized (JSON, or on a
    queue served by RQ's workers, its serializer)."""
    dependencies = (
        {
            "dependency_ids": json.dumps(list(parents)),
            "dependency_id": parents[0],
            "allow_dependency_failures": int(allow_failure),
        }
        if parents
        else {}
    )
    return {
        "origin": queue,
        "timeout": max(1, math.ceil(timeout)),  # RQ reads whole seconds
        "jobctl_timeout": repr(float(timeout)),  # what the worker enforces: 1500ms stays 1.5 s
        "result_ttl": int(result_ttl),
        "failure_ttl": int(failure_ttl),
        "meta": _serialized({}, serializer),
        **dependencies,  # as RQ stores them, so RQ's Job and RQ's workers read them
        "jobctl_job": name,
        "jobctl_max_retries": max_retries,
        "jobctl_attempts": 0,
        "jobctl_crash_limit": crash_limit,
    }


def describe(name: str, args: Iterable[Any], kwargs: Mapping[str, Any]) -> str:
    """RQ's job description: the call as text, as `rq info` and rq-dashboard show it."""
    parts = [json.dumps(a) for a in args] + [f"{k}={json.dumps(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def _text(raw: dict[bytes, bytes], key: str) -> str | None:
    return text_value(raw.get(key.encode()))


def _max_retries(raw: dict[bytes, bytes]) -> int | None:
    """The retries the job is allowed, by the rule its worker applies (worker.py): RQ's own Retry
    first (its budget, kept in jobctl_retries once a jobctl worker started it, else retries_left;
    not the queue's budget an RQ worker gave it, rq_engine.QUEUE_RETRIES), then the max_retries
    jobctl stored with it. None when the record says nothing: a job RQ's API enqueued without a
    Retry, which its queue's max_retries govern."""
    if b"jobctl_queue_retries" not in raw:
        own = number_value(raw.get(b"jobctl_retries"), int)
        if own is None:
            own = number_value(raw.get(b"retries_left"), int)
        if own is not None:
            return own
    return number_value(raw.get(b"jobctl_max_retries"), int)


def _json(value: bytes | None, default: Any) -> Any:
    """The JSON in a field; `default` when missing, not JSON (e.g. a result RQ pickled), or (for
    a list or dict default) not of the default's type."""
    try:
        decoded = json.loads(value) if value else default
    except (ValueError, RecursionError):
        return default
    return decoded if default is None or isinstance(decoded, type(default)) else default


def _errors(value: bytes | None) -> list[dict[str, Any]]:
    """The failed attempts (lua/lib.lua's add_error): {attempt, at, worker, error}, each value of
    the type the readers show, whatever another tool wrote."""
    return [
        {
            "attempt": number_value(str(entry.get("attempt")), int),
            "at": number_value(str(entry.get("at"))),
            "worker": None if entry.get("worker") is None else str(entry["worker"]),
            "error": None if entry.get("error") is None else str(entry["error"]),
        }
        for entry in _json(value, [])
        if isinstance(entry, dict)
    ]


def _traceback(value: bytes | None) -> str | None:
    """RQ keeps exc_info zlib-compressed, and reads it plain too."""
    if not value:
        return None
    with contextlib.suppress(zlib.error):
        value = zlib.decompress(value)
    return value.decode(errors="replace")


def _result(value: bytes | None, trust_pickle: bool) -> Any:
    """A result as jobctl stores it (JSON) or as an RQ worker does (pickled, on an rq-engine queue)."""
    if value and value[:1] == bytes([_PICKLE_PROTOCOL_MARK]) and trust_pickle:
        try:
            return pickle.loads(value)
        except Exception:  # noqa: BLE001 - unpickling foreign bytes can raise anything: no result shown
            return None
    return _json(value, None)


@dataclass
class JobView:
    """One job as every front end shows it (`show`, `enqueue --json`, `status`)."""

    id: str
    job: str
    queue: str
    state: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    max_retries: int | None = None  # None: the record does not say, its queue's max_retries apply
    errors: list[dict[str, Any]] = field(default_factory=list)  # {attempt, at, worker, error} (lua/lib.lua)
    crashes: int = 0
    progress: float | None = None
    progress_message: str | None = None
    result: Any = None
    error: str | None = None
    reason: str | None = None
    canceled_by: str | None = None  # the parent whose end canceled this job (the failure cascade)
    worker: str | None = None
    created_at: float | None = None
    enqueued_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    scheduled_for: float | None = None
    timeout: float | None = None
    depends_on: list[str] = field(default_factory=list)
    dependents: list[str] = field(default_factory=list)
    unreadable: str | None = None  # why the payload could not be read (a record another tool wrote)
    callback_error: str | None = None  # an RQ callback of the job that was refused or raised
    batch: str | None = None  # the batch it belongs to (api/batches.py)

    @classmethod
    def from_hash(
        cls,
        job_id: str,
        raw: dict[bytes, bytes],
        trust_pickle: bool = False,
        import_paths: Mapping[str, str] = {},
    ) -> JobView:
        """Never raises: a record another tool wrote shows what can be read, and why the rest
        cannot (`unreadable`). `trust_pickle`: see decode_payload. `import_paths`: the registered
        job names of functions that RQ's producers name by import path (keys.JOB_PATHS)."""
        unreadable = None
        try:
            name, args, kwargs = decode_payload(raw.get(b"data"), trust_pickle=trust_pickle)
            if b"jobctl_job" not in raw:  # enqueued by RQ's API, maybe by function reference
                name = import_paths.get(name, name)
        except PayloadError as exc:
            # RQ's description is the call as text ("myapp.jobs.add(1, 2)"): its name is safe to show
            called = (_text(raw, "description") or "").split("(", 1)[0]
            name, args, kwargs, unreadable = _text(raw, "jobctl_job") or called or "(unreadable)", [], {}, str(exc)
        return cls(
            id=job_id,
            job=name,
            queue=_text(raw, "origin") or "",
            state=_STATE_OF_RQ_STATUS.get(_text(raw, "status") or "queued", "queued"),
            args=args,
            kwargs=kwargs,
            attempts=number_value(raw.get(b"jobctl_attempts"), int) or 0,
            max_retries=_max_retries(raw),
            errors=_errors(raw.get(b"jobctl_errors")),
            crashes=number_value(raw.get(b"jobctl_crashes"), int) or 0,
            progress=number_value(raw.get(b"jobctl_progress")),
            progress_message=_text(raw, "jobctl_progress_message"),
            result=_result(raw.get(b"result"), trust_pickle),
            error=_traceback(raw.get(b"exc_info")),
            reason=_text(raw, "jobctl_reason"),
            canceled_by=_text(raw, "jobctl_canceled_by"),
            worker=_text(raw, "worker_name"),
            created_at=parse_rq_time(raw.get(b"created_at")),
            enqueued_at=parse_rq_time(raw.get(b"enqueued_at")),
            started_at=parse_rq_time(raw.get(b"started_at")),
            ended_at=parse_rq_time(raw.get(b"ended_at")),
            scheduled_for=number_value(raw.get(b"jobctl_scheduled_for")),
            timeout=number_value(raw.get(b"jobctl_timeout")) or number_value(raw.get(b"timeout")),
            unreadable=unreadable,
            callback_error=_text(raw, "jobctl_callback_error"),
            batch=_text(raw, "jobctl_batch"),
        )

    @property
    def last_error_line(self) -> str | None:
        if self.errors:
            error: str | None = self.errors[-1].get("error")
            return error
        return self.reason

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        if self.state != "finished":
            data.pop("result")
        for optional in ("unreadable", "callback_error", "canceled_by", "batch"):
            if data[optional] is None:
                data.pop(optional)
        return data
