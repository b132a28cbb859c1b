"""The no-op job both runners execute in the benchmarks (jobctl by name, RQ by dotted path)."""

from jobctl import job


@job("noop", queue="bench")
def noop(n: int = 0) -> int:
    return n
