"""Jobs and callbacks written for RQ (they use RQ's API), registered with jobctl: what
tests/test_rq_producers.py runs. Copied into the project directory next to sample_jobs.py."""

import asyncio
import json

from rq import get_current_job

from jobctl import callback, job, progress

CALLBACKS = "test:callbacks"  # a Redis list the callbacks append what they were given to


@job("uses_meta")
def uses_meta(key: str, value: str) -> dict:
    current = get_current_job()
    seen = dict(current.meta)
    current.meta[key] = value
    current.save_meta()
    return {"id": current.id, "seen": seen}


@job("current_id_or_none")
def current_id_or_none() -> str | None:
    current = get_current_job()
    return current.id if current is not None else None


@job("async_current_id")
async def async_current_id(pause: float) -> str:
    await asyncio.sleep(pause)  # the others run meanwhile on the same event loop
    return get_current_job().id


@job("progress_in_meta")
def progress_in_meta() -> dict:
    progress(40, "almost")
    return get_current_job().meta


def _note(connection, *entry) -> None:
    connection.rpush(CALLBACKS, json.dumps(entry))


@callback
def note_success(job, connection, result):
    _note(connection, "success", job.id, result)


@callback
def note_failure(job, connection, exc_type, value, traceback):
    _note(connection, "failure", job.id, exc_type.__name__, str(value), traceback is not None)


@callback
def note_stopped(job, connection):
    _note(connection, "stopped", job.id)


@callback
def broken_callback(job, connection, result):
    raise RuntimeError("a bug in the callback")


def not_registered(job, connection, result):
    _note(connection, "not registered, must never run", job.id)
