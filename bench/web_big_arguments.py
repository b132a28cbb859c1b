"""The dashboard's job list and job page with a few jobs of very large arguments: the bytes of
each page and the memory of the server (`jobctl web`, a real process) while it answers.

    PYTHONPATH=src python bench/web_big_arguments.py [--jobs 5] [--megabytes 20] [--polls 5] [--redis-url URL]

It FLUSHES the Redis database given (default: database 14 of REDIS_URL's server, or of
127.0.0.1:6379), stores `--jobs` queued jobs whose one argument is a string of `--megabytes` MB
(random letters: zlib cannot shrink it much), starts `jobctl web` on a free port and requests the
queued jobs' list `--polls` times (the page re-fetches itself every 2 s), then one job's page.
It prints each page's size and the server's resident memory after the requests and at its peak
(VmHWM). The server runs the `jobctl` found on PYTHONPATH: point it at another checkout's src/
to compare.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import redis

from jobctl.store import keys
from jobctl.store.jobdata import encode_payload, rq_time

TOKEN = "bench-token-0123456789"


def default_url() -> str:
    parts = urlsplit(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379")
    return urlunsplit((parts.scheme, parts.netloc, "/14", "", ""))


def memory_kib(pid: int) -> dict[str, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def store_jobs(connection: redis.Redis, count: int, megabytes: int) -> list[str]:
    connection.flushdb()
    letters = random.Random(0)
    ids = [f"big-{n}" for n in range(count)]
    for job_id in ids:
        argument = "".join(letters.choices(string.ascii_letters, k=megabytes * 1_000_000))
        connection.hset(
            keys.job(job_id),
            mapping={
                "data": encode_payload("add", [argument], {}),
                "origin": "default",
                "status": "queued",
                "jobctl_job": "add",
                "enqueued_at": rq_time(time.time()),
            },
        )
        connection.rpush(keys.queue("default"), job_id)
    return ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5)
    parser.add_argument("--megabytes", type=int, default=20)
    parser.add_argument("--polls", type=int, default=5)
    parser.add_argument("--redis-url", default=default_url())
    options = parser.parse_args()
    ids = store_jobs(redis.Redis.from_url(options.redis_url), options.jobs, options.megabytes)
    port = free_port()
    with tempfile.TemporaryDirectory() as project:
        Path(project, "queue.yml").write_text("default: {}\n")
        server = subprocess.Popen(
            [sys.executable, "-m", "jobctl", "web", "--port", str(port)],
            cwd=project,
            env={**os.environ, "REDIS_URL": options.redis_url, "JOBCTL_WEB_TOKEN": TOKEN},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base, bearer = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {TOKEN}"}
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{base}/login", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            print(f"{options.jobs} queued jobs, one argument of {options.megabytes} MB each")
            print(f"  server at start: {memory_kib(server.pid)['VmRSS'] / 1024:.0f} MiB resident")
            for path in ["/jobs?state=queued"] * options.polls + [f"/jobs/{ids[0]}", f"/api/jobs/{ids[0]}"]:
                started = time.monotonic()
                answer = httpx.get(base + path, headers=bearer, timeout=300)
                took = time.monotonic() - started
                memory = memory_kib(server.pid)
                print(
                    f"  GET {path:22} {answer.status_code} {len(answer.content) / 1e6:8.2f} MB in {took:5.2f}s; "
                    f"server {memory['VmRSS'] / 1024:5.0f} MiB resident, peak {memory['VmHWM'] / 1024:5.0f} MiB"
                )
        finally:
            server.terminate()
            server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
