"""Example jobs written by `jobctl init`. jobctl imports this module when told to:

    export JOBCTL_JOBS=example_jobs      # or: jobctl --jobs example_jobs ...
    jobctl work                          # in one terminal
    jobctl enqueue hello Ada --wait      # in another
    jobctl enqueue crunch -k count=20 --wait
    jobctl enqueue countdown 3 --wait

What a job prints or logs is kept with it: `jobctl logs JOB_ID`.
"""

import asyncio
import logging
import time

from jobctl import PermanentError, job, progress

log = logging.getLogger(__name__)


@job("hello", queue="default")
def hello(name: str = "world") -> str:
    """A plain job: its return value is the job's result (`jobctl show`)."""
    if not name.strip():
        raise PermanentError("hello needs a name")  # permanent: no retry, straight to dead
    print(f"hello, {name}")
    return f"hello, {name}"


@job("countdown", queue="default", timeout="1m")
async def countdown(seconds: int = 3) -> int:
    """An `async def` job: awaited by the worker, so it waits without holding a thread."""
    for left in range(seconds, 0, -1):
        log.info("%d...", left)
        await asyncio.sleep(1)
    return seconds


@job("crunch", queue="low", max_retries=2)
def crunch(count: int = 10) -> dict[str, int]:
    """A job that reports progress: `enqueue --wait`, `status` and `show` display it."""
    total = 0
    for step in range(1, count + 1):
        total += step * step
        time.sleep(0.1)
        progress(100 * step / count, f"step {step} of {count}")
    return {"steps": count, "sum_of_squares": total}
