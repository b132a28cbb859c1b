"""Job state transitions, each one Lua script run atomically in Redis (see `lua/`).

A job moves queued -> started -> finished | scheduled (retry) | dead, or is deferred, canceled,
recovered after a crash, promoted when its time comes. Doing each move in one script means a
job is never in two places or none, whichever process dies at whichever moment.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import redis

from .jobdata import rq_time


@cache
def _source(name: str) -> str:
    lua = resources.files("jobctl") / "lua"
    return (lua / "lib.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


class Transitions:
    """The scripts, bound to one Redis connection."""

    def __init__(self, connection: redis.Redis):
        self.connection = connection
        self._scripts: dict[str, Any] = {}

    def _run(self, name: str, args: list) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.connection.register_script(_source(name))
        return script(keys=[], args=args)

    def enqueue(
        self,
        job_id: str,
        queue: str,
        fields: dict[str, Any],
        *,
        now: float,
        run_at: float = 0,
        unique_claim: str = "",
        parents: list[str] = (),
    ) -> tuple[str, str, str]:
        """Store a job. Returns (outcome, job id, state); outcome is 'ok', 'exists' (the id is
        taken by an active job), 'duplicate' (the unique claim is held; the id is the holder's)
        or 'unknown_parent' (the id is the missing parent's)."""
        flat: list[Any] = []
        for name, value in fields.items():
            flat += [name, value]
        args = [job_id, queue, run_at, unique_claim, json.dumps(list(parents)), now, rq_time(now)]
        outcome, ident, state = self._run("enqueue", args + flat)
        return outcome.decode(), ident.decode(), state.decode()

    def fetch(self, worker: str, queues: list[str], now: float, moved_id: str = "") -> list | None:
        """Start the next job; returns [id, queue, attempt, data, timeout, max_retries] or None."""
        return self._run("fetch", [worker, now, rq_time(now), moved_id, *queues]) or None

    def succeed(self, job_id, queue, worker, attempt, now, result_json, result_b64, run_seconds, job_name, history):
        """Record a finished job; `history` is its execution record for job tracking."""
        self._run(
            "succeed",
            [
                job_id, queue, worker, attempt, now, rq_time(now), result_json, result_b64, run_seconds, job_name,
                json.dumps(history),
            ],
        )

    def fail(
        self, job_id, queue, worker, attempt, now, *, retry_at, error_entry, exc_info, reason, run_seconds, job_name,
        history,
    ):
        """Record a failed attempt: retried at `retry_at` (unix time), or dead when it is None."""
        verdict = "dead" if retry_at is None else "retry"
        self._run(
            "fail",
            [
                job_id, queue, worker, attempt, now, rq_time(now), verdict, retry_at or 0,
                json.dumps(error_entry), exc_info, reason, run_seconds, job_name, json.dumps(history),
                error_entry["error"],
            ],
        )

    def recover(self, worker: str, now: float, *, cause: str, crash_limit: int, how: str) -> tuple[int, int]:
        """Requeue (or bury, at crash_limit) the jobs a gone worker held; returns (requeued, buried)."""
        requeued, buried = self._run("recover", [worker, now, rq_time(now), cause, crash_limit, how])
        return int(requeued), int(buried)

    def promote(self, queues: list[str], now: float) -> int:
        return int(self._run("promote", [now, rq_time(now), *queues]))

    def requeue_dead(self, job_id: str, now: float) -> bool:
        return bool(self._run("requeue_dead", [job_id, now, rq_time(now)]))
