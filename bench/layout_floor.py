"""The least Redis work RQ's layout allows per job, beside jobctl's and Dramatiq's, side by side.

    python bench/layout_floor.py [--jobs 20000] [--rounds 3] [--redis-url redis://127.0.0.1:6379/14]

jobctl keeps RQ's data layout, so RQ's tools read what it writes. Whatever runs a job in that
layout must make Redis do, per job: take it from the queue into a list that holds it while it
runs (jobctl's crash-exact in-flight list; Dramatiq keeps an ack set), read its payload, mark it
started (status, started_at, worker_name, last_heartbeat, the started registry) and, when it
ends, finished (status, ended_at, out of the started registry, into the finished registry, its
return value in its results stream). The "floor" system here does exactly that and nothing else,
in one Redis function call per job (finishing one job and starting the next, as jobctl's outcome
call does) from 2 plain Python processes that run bench/counter.py's job on the same records
jobctl's `enqueue_many` writes: no fencing, retries, timeouts, limits, dependents, reservations or
options. It is a floor, not a runner. Printed: each system's Redis CPU per job (INFO cpu, the
workers' run; with the enqueue before it), as bench/throughput.py measures it, and each against
Dramatiq's. The systems run one after the other, `--rounds` times; the median round is shown.
The Redis database given is flushed: use one that holds nothing else.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import counter
import harness
import redis

# One call per job, as jobctl's outcome call: finish the job the caller ran (ARGV[1], '' for none),
# then start the next. KEYS: the queue, the caller's in-flight list, the started and finished
# registries, the job hash and results stream prefixes. ARGV: the job finished, worker name, now
# (unix), now (ISO 8601), its return value as JSON, base64-encoded. Reply: {id, payload} or nil.
FLOOR = """#!lua name=jobctl_bench_floor
redis.register_function('floor_next', function(keys, argv)
  local finished, worker, now, now_iso = argv[1], argv[2], argv[3], argv[4]
  if finished ~= '' then
    redis.call('LREM', keys[2], '1', finished)
    redis.call('ZREM', keys[3], finished)
    redis.call('HSET', keys[5] .. finished, 'status', 'finished', 'ended_at', now_iso)
    redis.call('XADD', keys[6] .. finished, 'MAXLEN', '~', '10', '*', 'type', '1', 'worker_name', worker,
      'return_value', argv[5], 'execution_ended_at', now)
    redis.call('ZADD', keys[4], now, finished)
  end
  local id = redis.call('LMOVE', keys[1], keys[2], 'LEFT', 'RIGHT')
  if not id then return nil end
  local payload = redis.call('HGET', keys[5] .. id, 'data')
  redis.call('HSET', keys[5] .. id, 'status', 'started', 'started_at', now_iso, 'worker_name', worker,
    'last_heartbeat', now_iso)
  redis.call('ZADD', keys[3], now, id)
  return {id, payload}
end)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each system; the median is shown")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one floor process
    options = parser.parse_args()
    if options.worker:
        floor_worker(options.redis_url, options.jobs)
        return
    url = options.redis_url
    print(f"# python bench/layout_floor.py --jobs {options.jobs} --rounds {options.rounds} --redis-url {url}")
    systems = [
        lambda: harness.jobctl(url, options.jobs, "bench: {worker_count: 2}\n"),
        lambda: floor(url, options.jobs),
        lambda: harness.dramatiq(url, options.jobs),
    ]
    rounds = [[run() for run in systems] for _ in range(options.rounds)]
    runs = [
        sorted(of_system, key=lambda run: run.redis_cpu_ms_per_job)[len(of_system) // 2] for of_system in zip(*rounds)
    ]
    dramatiq = runs[-1]
    print("Redis CPU µs per job (median round): the workers' run; with the enqueue before it")
    for run in runs:
        with_enqueue = run.redis_cpu_ms_per_job + run.enqueue_redis_cpu_ms_per_job
        ratio = run.redis_cpu_ms_per_job / dramatiq.redis_cpu_ms_per_job
        ratio_with = with_enqueue / (dramatiq.redis_cpu_ms_per_job + dramatiq.enqueue_redis_cpu_ms_per_job)
        print(
            f"  {run.system:52s} {1000 * run.redis_cpu_ms_per_job:5.0f} ({1000 * with_enqueue:4.0f})"
            f"   {ratio:.2f}x ({ratio_with:.2f}x) Dramatiq's   {run.commands_per_job:5.1f} commands a job"
        )
    redis.Redis.from_url(url).flushdb()


def floor(url: str, jobs: int) -> harness.Run:
    """The floor system's run: jobs enqueued by jobctl's enqueue_many (the records jobctl runs),
    then 2 floor processes."""
    from jobctl.api.producer import enqueue_many
    from jobctl.config.queues import load_queues

    connection = redis.Redis.from_url(url)
    connection.flushdb()
    connection.function_load(FLOOR, replace=True)
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "queue.yml").write_text("bench: {worker_count: 2}\n")
        queues = load_queues(str(Path(directory) / "queue.yml"))
    with harness.Enqueued(url, jobs) as enqueued:
        enqueue_many(connection, queues, "counter", [([jobs, 0], {}) for _ in range(jobs)])
    command = [sys.executable, __file__, "--worker", "--jobs", str(jobs), "--redis-url", url]
    run = harness.measure(
        "RQ's layout alone (the floor)", url, jobs, lambda: [harness.popen(command, url) for _ in range(2)]
    )
    return enqueued.of(run)


def floor_worker(url: str, jobs: int) -> None:
    """Run jobs by FLOOR until the queue is empty and every job is counted."""
    connection = redis.Redis.from_url(url)
    worker = f"floor.{socket.gethostname()}.{os.getpid()}"
    keys = ["rq:queue:bench", f"jobctl:active:{worker}", "rq:wip:bench", "rq:finished:bench", "rq:job:", "rq:results:"]
    finished, result = "", ""
    while True:
        now = time.time()
        reply = connection.fcall("floor_next", len(keys), *keys, finished, worker, repr(now), _iso(now), result)  # type: ignore[no-untyped-call]
        if not reply:
            if int(connection.get(counter.COUNTER) or 0) >= jobs:
                return
            time.sleep(0.001)
            finished = ""
            continue
        finished = reply[0].decode()
        result = base64.b64encode(json.dumps(counter.counter(jobs)).encode()).decode()


def _iso(unix: float) -> str:
    return datetime.datetime.fromtimestamp(unix, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


if __name__ == "__main__":
    main()
