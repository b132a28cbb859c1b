"""bench/counter.py's async job for arq: `arq arq_settings.WorkerSettings`, its in-flight limit
(max_jobs) from JOBCTL_BENCH_ARQ_MAX_JOBS."""

import os
from typing import ClassVar

from arq.connections import RedisSettings
from counter import URL, async_counter


async def arq_counter(ctx: dict, total: int, pause: float = 0.0) -> int:
    return await async_counter(total, pause)


class WorkerSettings:
    functions: ClassVar = [arq_counter]  # arq reads the class attributes
    redis_settings = RedisSettings.from_dsn(URL)
    max_jobs = int(os.environ.get("JOBCTL_BENCH_ARQ_MAX_JOBS", "10"))
