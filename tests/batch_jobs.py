"""Jobs tests/test_batches.py puts in batches: the callbacks write each call to a Redis list,
so that a test counts how often each ran, and with what."""

import json
import time

import jobctl
from jobctl import PermanentError, job
from jobctl.api.client import current_client
from jobctl.store import keys

CALLS = "tests:batch-calls"  # list: one JSON object per callback run


@job("batch_report")
def batch_report(batch_id: str, total: int, succeeded: int, failed: int) -> None:
    call = {"callback": "complete", "batch_id": batch_id, "total": total, "succeeded": succeeded, "failed": failed}
    current_client().connection.rpush(CALLS, json.dumps(call))


@job("batch_report_pending")
def batch_report_pending(batch_id: str, total: int, succeeded: int, failed: int) -> None:
    """batch_report, with how many jobs of the batch were pending as it ran."""
    connection = current_client().connection
    pending = int(connection.hget(keys.layout_of(connection).batch(batch_id), "pending") or -1)
    call = {"batch_id": batch_id, "total": total, "succeeded": succeeded, "failed": failed, "pending": pending}
    connection.rpush(CALLS, json.dumps(call))


@job("batch_success")
def batch_success(batch_id: str, total: int, succeeded: int, failed: int) -> None:
    call = {"callback": "success", "batch_id": batch_id, "total": total, "succeeded": succeeded, "failed": failed}
    current_client().connection.rpush(CALLS, json.dumps(call))


@job("batch_add")
def batch_add(a: int, b: int = 0) -> int:
    return a + b


@job("batch_sleep")
def batch_sleep(seconds: float) -> None:
    time.sleep(seconds)


@job("batch_flaky", max_retries=2)
def batch_flaky(key: str) -> str:
    """Fails its first attempt, finishes its second."""
    if current_client().connection.incr(f"tests:flaky:{key}") == 1:
        raise ValueError("first attempt fails")
    return key


@job("batch_dies")
def batch_dies(switch: str) -> str:
    """Dead at once while the Redis key `switch` is unset; finishes once it is set."""
    if not current_client().connection.exists(switch):
        raise PermanentError("switch is off")
    return "on"


@job("batch_nester")
def batch_nester(children: int) -> None:
    """Adds `children` jobs to its own batch while it runs."""
    current = jobctl.batch.current()
    assert current is not None, "batch_nester runs in a batch"
    with current:
        batch_add.enqueue_many([(n,) for n in range(children)])


@job("batch_not_a_callback")
def batch_not_a_callback(path: str) -> None:
    """Takes no batch_id, total, succeeded or failed: a batch refuses it as a callback."""
