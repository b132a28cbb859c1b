"""Server time of every dashboard page with 1,000,000 jobs in Redis (target: 200 ms each).

    PYTHONPATH=src python bench/web.py [--jobs 1000000] [--repeat 5] [--redis-url redis://127.0.0.1:6379/14] [--no-fill]

It fills the Redis database given (default: database 14 of REDIS_URL's server, or of
127.0.0.1:6379), which is FLUSHED first, with `--jobs` real job records (hash + queue list or
registry entry, pipelined; no need to go through enqueue): 40 % queued, 30 % finished, 20 % dead,
10 % scheduled, on the queue `default`, plus a minute of per-minute history. Then it requests
each page in-process (Starlette's TestClient, logged in with a Bearer token) and prints the
median and the worst of `--repeat` requests: the time the server spends, without a network.
`--no-fill` reuses what a previous run left (the database is left filled for that).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis

from jobctl.config.settings import Settings
from jobctl.store import keys
from jobctl.store.jobdata import encode_payload, rq_time

CHUNK = 10_000
TARGET_MS = 200
SHARES = (("queued", 0.4), ("finished", 0.3), ("dead", 0.2), ("scheduled", 0.1))
JOB_NAMES = ("add", "notifications", "analytics", "channel_sync")


def default_url() -> str:
    parts = urlsplit(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379")
    return urlunsplit((parts.scheme, parts.netloc, "/14", "", ""))


def fill(connection: redis.Redis, total: int) -> None:
    connection.flushdb()
    now, started, number = time.time(), time.monotonic(), 0
    status = {"queued": "queued", "finished": "finished", "dead": "failed", "scheduled": "scheduled"}
    registry = {"finished": keys.finished, "dead": keys.dead, "scheduled": keys.scheduled}
    for state, share in SHARES:
        count = int(total * share)
        for start in range(number, number + count, CHUNK):
            ids = [f"bench-{state}-{n}" for n in range(start, min(number + count, start + CHUNK))]
            with connection.pipeline(transaction=False) as pipe:
                for offset, job_id in enumerate(ids):
                    name = JOB_NAMES[offset % len(JOB_NAMES)]
                    pipe.hset(
                        keys.job(job_id),
                        mapping={
                            "data": encode_payload(name, [start + offset, f"user-{offset}"], {}),
                            "origin": "default",
                            "status": status[state],
                            "jobctl_job": name,
                            "enqueued_at": rq_time(now - 60),
                            "ended_at": rq_time(now - 30) if state in ("finished", "dead") else "",
                        },
                    )
                if state == "queued":
                    pipe.rpush(keys.queue("default"), *ids)
                else:
                    pipe.zadd(registry[state]("default"), {job_id: now + i for i, job_id in enumerate(ids)})
                pipe.execute()
        number += count
        print(f"  {state:9} {count:>9,} jobs ({time.monotonic() - started:.0f}s)", file=sys.stderr)
    minute = int(now // 60)
    connection.hset(
        keys.minutes("default", minute // 1440),
        mapping={f"{minute % 1440}:finished": 120, f"{minute % 1440}:failed": 3},
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--redis-url", default=default_url())
    parser.add_argument("--no-fill", action="store_true", help="reuse the jobs a previous run stored")
    options = parser.parse_args()

    from starlette.testclient import TestClient

    from jobctl.web.app import create_app
    from jobctl.web.auth import Auth
    from jobctl.web.board import Dashboard

    connection = redis.Redis.from_url(options.redis_url)
    if not options.no_fill:
        print(f"filling {options.redis_url} (flushed first) with {options.jobs:,} jobs", file=sys.stderr)
        fill(connection, options.jobs)
    project = Path(tempfile.mkdtemp(prefix="jobctl-bench-web-"))
    (project / "queue.yml").write_text("default: {worker_count: 1}\nanalytics: {worker_count: 1}\n")
    settings = Settings(
        redis_url=options.redis_url,
        config_path=str(project / "queue.yml"),
        recurring_path=str(project / "recurring.yml"),
    )
    client = TestClient(create_app(Dashboard(settings, Auth("bench"))), headers={"Authorization": "Bearer bench"})
    deep = int(options.jobs * 0.4) - 50
    pages = [
        "/",
        "/queues",
        "/workers",
        "/stats",
        "/recurring",
        "/api/status",
        "/api/stats",
        "/jobs?state=queued",
        f"/jobs?state=queued&start={deep}",
        "/jobs?state=dead",
        "/jobs?state=dead&start=150000",
        "/jobs?state=finished",
        "/jobs?state=scheduled",
        "/jobs?state=dead&job=notifications",
        "/jobs?state=queued&q=user-77",
        "/jobs?state=queued&q=no-such-text",
        "/jobs/bench-dead-800000",
        "/api/jobs/bench-dead-800000",
    ]
    total_jobs = connection.dbsize()
    print(f"{total_jobs:,} keys in {options.redis_url}; server time per page, {options.repeat} requests each")
    print(f"{'page':52} {'median':>8} {'worst':>8}")
    slow = 0
    for page in pages:
        times = []
        for _ in range(options.repeat):
            started = time.perf_counter()
            answer = client.get(page)
            times.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, (page, answer.status_code, answer.text[:300])
        median = statistics.median(times)
        slow += median > TARGET_MS
        print(f"{page:52} {median:7.1f}ms {max(times):7.1f}ms{'  SLOW' if median > TARGET_MS else ''}")
    print(f"target: {TARGET_MS} ms per page; {slow} page(s) above it")
    print(f"reproduce: PYTHONPATH=src python bench/web.py --jobs {options.jobs} --redis-url {options.redis_url}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
