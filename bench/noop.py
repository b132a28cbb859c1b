"""The no-op job both runners execute in the benchmarks (jobctl by name, RQ by dotted path)."""

from jobctl import job


@job("noop", queue="bench")
def noop(n: int = 0) -> int:
    return n


_tally_connection = None


@job("tally", queue="bench")
def tally(n: int) -> int:
    """Count this execution of job n in Redis (the soak benchmark checks every job ran)."""
    global _tally_connection
    if _tally_connection is None:
        import os

        import redis

        _tally_connection = redis.Redis.from_url(os.environ["JOBCTL_BENCH_REDIS_URL"])
    _tally_connection.hincrby("jobctl:bench:executions", n, 1)
    return n


@job("fails", queue="bench", max_retries=0)
def fails(n: int = 0) -> None:
    """Dies at once with an ordinary traceback (bench/requeue_dead.py clones its dead record)."""
    raise RuntimeError(f"job {n} failed")
