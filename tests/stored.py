"""A job stored from its whole record, straight through lua/enqueue.lua: for the tests of the
scripts, and for records an older producer wrote. The product's producer builds the shared part
of a record once per kind of job (api/producer.Template) and never the record in one piece."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jobctl.store.enqueue_calls import EnqueueCall, EnqueueShared
from jobctl.store.jobdata import describe, encode_payload, rq_time, shared_job_fields
from jobctl.store.transitions import Transitions


def new_job_fields(
    name: str, args: Sequence[Any], kwargs: Mapping[str, Any], queue: str, *, now: float, **shared: Any
) -> dict[str, Any]:
    """A job's whole record as stored (but its status, which the enqueue script sets)."""
    created = rq_time(now)
    return {
        "created_at": created,
        "enqueued_at": created,
        "data": encode_payload(name, args, kwargs, shared.get("serializer", "json")),
        "description": describe(name, args, kwargs),
        **shared_job_fields(name, queue, **shared),
    }


def store_job(
    transitions: Transitions,
    job_id: str,
    queue: str,
    fields: Mapping[str, Any],
    *,
    now: float,
    run_at: float = 0,
    unique_claim: str = "",
    parents: Sequence[str] = (),
    run_claim: tuple[str, str, int] | None = None,
    unique_ttl: float = 0,
    max_size: int = 0,
) -> tuple[str, str, str]:
    """Transitions.enqueue_call of a job given as its whole record (new_job_fields)."""
    shared = {name: value for name, value in fields.items() if name not in ("data", "description")}
    call = EnqueueCall.of(
        EnqueueShared.of(
            queue, shared, parents=parents, unique_ttl=unique_ttl, max_size=max_size, layout=transitions.layout
        ),
        job_id,
        now,
        fields.get("data", b""),
        fields.get("description", ""),
        run_at=run_at,
        unique_claim=unique_claim,
        run_claim=run_claim,
    )
    return transitions.enqueue_call(call)
