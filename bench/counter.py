"""The one job every system runs in bench/throughput.py and bench/io_bound.py, written once
for each system's API: it increments one Redis counter (and, for the first and the last job,
notes the time, so a run can also be timed by the jobs' own clocks). `pause` makes it I/O-bound.

jobctl runs it by name (`counter`, `async_counter`), RQ by path (`counter.counter`), Dramatiq
through bench/dramatiq_actors.py, arq through bench/arq_settings.py (each imports only its own
system, so no process pays for another's imports).
"""

from __future__ import annotations

import asyncio
import os
import time

import redis

URL = os.environ.get("JOBCTL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
COUNTER, FIRST, LAST = "bench:counter", "bench:first", "bench:last"
_connection: redis.Redis | None = None


def counter(total: int, pause: float = 0.0) -> int:
    global _connection
    if _connection is None:
        _connection = redis.Redis.from_url(URL)
    if pause:
        time.sleep(pause)
    return _note(_connection.incr(COUNTER), total)


def _note(n: int, total: int) -> int:
    if n == 1:
        _connection.set(FIRST, time.time())
    if n == total:
        _connection.set(LAST, time.time())
    return n


async def async_counter(total: int, pause: float = 0.0) -> int:
    global _connection
    if _connection is None:
        _connection = redis.Redis.from_url(URL)
    await asyncio.sleep(pause)
    return _note(_connection.incr(COUNTER), total)


try:  # jobctl's catalogue, when jobctl imports this module (JOBCTL_JOBS=counter)
    from jobctl import job

    job("counter", queue="bench")(counter)
    job("async_counter", queue="bench")(async_counter)
except ImportError:
    pass
