"""The no-op actor bench/throughput.py runs on Dramatiq, when Dramatiq is installed. Each
execution records its start and end time in Redis, so the run is timed like the others."""

import os
import time

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

URL = os.environ.get("JOBCTL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
dramatiq.set_broker(RedisBroker(url=URL))
_times = redis.Redis.from_url(URL)


@dramatiq.actor(queue_name="bench", max_retries=0)
def noop(n: int) -> int:
    started = time.time()
    with _times.pipeline(transaction=False) as pipe:
        pipe.rpush("bench:dramatiq:started", started)
        pipe.rpush("bench:dramatiq:ended", time.time())
        pipe.execute()
    return n
