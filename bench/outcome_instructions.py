"""Redis instructions per outcome call: the call a `concurrency: 1` worker makes for each job.

    python bench/outcome_instructions.py [--calls 400] [--redis-server PATH]

bench/redis_instructions.py counts a whole run (start-up, the job's own INCR, promotions,
heartbeats); this counts one kind of call alone, for weighing a change to the outcome scripts.
It drives jobctl's real Transitions as a worker with `prefetch: 1` does: each call records the
job that finished (lua/succeed.lua), starts the job reserved behind it, given the attempt and
timeout its reservation read (GoOn.started_with), and reserves the next, on the records
`enqueue_many` writes for bench/counter.py's job. The counts, by valgrind's callgrind, are of
`--calls` calls after WARM_UP others, less what Redis executes idle in as long, both ways of
starting the reserved job. A redis-server built with symbols (`--redis-server`) lets
`callgrind_annotate` name where they go. Needs valgrind.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import counter  # noqa: F401 - registers the counter job enqueue_many stores
import harness
import redis

WORKER, TOKEN, QUEUE = "bench.1", "bench-lease", "bench"
# calls before counting: past 128 entries the finished registry is a skiplist, as a live one is
# (a listpack until then, each insert a scan)
WARM_UP = 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "redis-server")
    options = parser.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("needs valgrind: apt-get install valgrind")
    print(f"# python bench/outcome_instructions.py --calls {options.calls} --redis-server {options.redis_server}")
    with tempfile.TemporaryDirectory(prefix="jobctl-callgrind-") as directory:
        server, url = harness.callgrind_redis(directory, options.redis_server)
        try:
            connection = redis.Redis.from_url(url)
            for as_reserved in (True, False):
                count = outcome_calls(connection, server.pid, directory, options.calls, as_reserved)
                how = "as reserved" if as_reserved else "read from its record"
                print(f"reserved job started {how:22s} {count:>10,.0f} Redis instructions per outcome call")
        finally:
            server.terminate()
            server.wait(timeout=60)


def outcome_calls(connection: redis.Redis, pid: int, directory: str, calls: int, as_reserved: bool) -> float:
    """Instructions per outcome call over `calls` of them, each finishing one job, starting the
    reserved one (`as_reserved`: from its reservation's attempt and timeout) and reserving one."""
    from jobctl.api.producer import enqueue_many
    from jobctl.config.queues import load_queues
    from jobctl.store import keys
    from jobctl.store.transitions import GoOn, Next, Transitions

    connection.flushdb()
    with tempfile.TemporaryDirectory() as workdir:
        (Path(workdir) / "queue.yml").write_text(f"{QUEUE}: {{}}\n")
        queues = load_queues(str(Path(workdir) / "queue.yml"))
    enqueue_many(connection, queues, "counter", [([calls, 0], {}) for _ in range(calls + WARM_UP + 3)])
    connection.hset(keys.worker(WORKER), mapping={"jobctl_lease": TOKEN, "queues": QUEUE})
    connection.sadd(keys.ACTIVE_WORKERS, WORKER)
    transitions = Transitions(connection)
    (row,) = transitions.fetch(WORKER, TOKEN, [QUEUE], time.time())
    reply = transitions.succeed(
        row[0].decode(), QUEUE, WORKER, int(row[2]), time.time(), b"1", GoOn([QUEUE], reserve=1)
    )
    assert isinstance(reply, Next) and reply.row
    running, attempt, reserved = reply.row[0].decode(), int(reply.row[2]), reply.reserved[0]

    def one_call() -> None:
        nonlocal running, attempt, reserved
        started_with = (int(reserved[2]), float(reserved[4])) if as_reserved else None
        go_on = GoOn([QUEUE], start=(reserved[0].decode(), QUEUE), reserve=1, started_with=started_with)
        next_reply = transitions.succeed(running, QUEUE, WORKER, attempt, time.time(), b"1", go_on)
        assert isinstance(next_reply, Next) and next_reply.started
        running, attempt, reserved = reserved[0].decode(), next_reply.started, next_reply.reserved[0]

    for _ in range(WARM_UP):
        one_call()
    harness.callgrind_zero(pid)
    started = time.monotonic()
    for _ in range(calls):
        one_call()
    count = harness.callgrind_count(directory, pid)
    # less what Redis executes idle in as long (its timers)
    elapsed = time.monotonic() - started
    harness.callgrind_zero(pid)
    time.sleep(elapsed)
    return (count - harness.callgrind_count(directory, pid)) / calls


if __name__ == "__main__":
    main()
