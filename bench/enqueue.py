"""Enqueue rate: jobctl against plain RQ, one by one and in bulk, on one Redis.

    python bench/enqueue.py [--jobs 20000] [--redis-url redis://127.0.0.1:6379/14]

Bulk is `jobctl.api.producer.enqueue_many` (what `jobctl enqueue --from` uses) against RQ's
`Queue.enqueue_many` in one pipeline. The Redis database given is flushed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def rate(count: int, action) -> float:
    started = time.perf_counter()
    action()
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    options = parser.parse_args()
    print(f"# python bench/enqueue.py --jobs {options.jobs} --redis-url {options.redis_url}")
    print(f"# {os.cpu_count()} cores")

    import noop  # noqa: F401
    from rq import Queue
    from rq.serializers import JSONSerializer

    from jobctl.api.producer import enqueue, enqueue_many
    from jobctl.config.queues import QueueConfig, QueuesConfig

    connection = redis.Redis.from_url(options.redis_url)
    config = QueuesConfig("bench", {"bench": QueueConfig("bench")})
    rq_queue = Queue("bench", connection=connection, serializer=JSONSerializer)
    single = min(options.jobs, 2000)

    def rq_bulk():
        with connection.pipeline() as pipe:
            rq_queue.enqueue_many(
                [Queue.prepare_data("noop.noop", args=(n,)) for n in range(options.jobs)], pipeline=pipe
            )
            pipe.execute()

    runs = [
        ("RQ enqueue, one by one", single, lambda: [rq_queue.enqueue("noop.noop", n) for n in range(single)]),
        (
            "jobctl enqueue, one by one",
            single,
            lambda: [enqueue(connection, config, "noop", [n]) for n in range(single)],
        ),
        ("RQ enqueue_many, one pipeline", options.jobs, rq_bulk),
        (
            "jobctl enqueue_many (--from)",
            options.jobs,
            lambda: enqueue_many(connection, config, "noop", (([n], {}) for n in range(options.jobs))),
        ),
    ]
    results = {}
    for name, count, action in runs:
        connection.flushdb()
        results[name] = rate(count, action)
    connection.flushdb()
    for name, value in results.items():
        print(f"{name:34s} {value:9.0f} jobs/s")
    print(
        f"bulk: jobctl {results['jobctl enqueue_many (--from)'] / results['RQ enqueue_many, one pipeline']:.2f}x RQ; "
        f"one by one: jobctl {results['jobctl enqueue, one by one'] / results['RQ enqueue, one by one']:.2f}x RQ"
    )


if __name__ == "__main__":
    main()
