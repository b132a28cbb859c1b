"""`jobctl scheduler`: the daemon that enqueues recurring.yml's entries when they are due.

Run as many as you like against one Redis (two for high availability): each (entry, due time)
is enqueued once, by whichever scheduler claims it first.

- **Claim.** The enqueue script takes `jobctl:scheduler:claim:<entry>:<due>` with `SET NX` in the
  same atomic step that stores the run (on a Redis Cluster the claim carries the hash tag of the
  run's queue, `jobctl:scheduler:claim:{<queue>}:<entry>:<due>`, so it is in the slot the script
  runs on; the scheduler's other keys are fleet-wide, each written by a command of its own), so a claim is never held by a run that was not stored (a
  scheduler dying mid-way loses nothing); a scheduler that loses the race leaves that due time to
  the winner. The job id is
  deterministic, `cron-<entry>-<due>` (unix seconds; keys.recurring_job_id), so the enqueue script
  also refuses a second copy while the first is active, and every run of an entry has its own id
  (runs never share one). It is a valid RQ id, so RQ's Job and an `engine: rq` queue's workers take
  it. The claim's key does not depend on the id's form: a scheduler of an earlier version, whose
  ids were `cron:<entry>:<due>`, running beside this one during an upgrade, never enqueues a due
  time this one did, nor the reverse.
- **Progress.** `jobctl:scheduler:last:<entry>` holds the latest due time handled (only ever
  raised, atomically), so every scheduler, and one restarted later, starts where the others left.
- **Missed runs.** On the first pass after this scheduler (re)started, lost Redis or was stalled,
  due times older than ON_TIME were missed by every scheduler: `catch_up: latest` enqueues the most
  recent of them once, `catch_up: none` skips them. A scheduler that keeps ticking never drops a run.
- **Liveness.** Every pass writes `jobctl:scheduler:next` (entry -> next run, unix time) and
  `jobctl:scheduler:heartbeat` (unix time, expiring), which `jobctl status` reads.

The pass runs at the nearest due time and at least every second. SIGHUP reloads recurring.yml
(an invalid file keeps the running schedule); SIGTERM/SIGINT stop it with exit status 0.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, cast

import redis

from .. import logs
from ..api.producer import AlreadyClaimed, DuplicateJob, enqueue
from ..config.queues import QueuesConfig, RecurringEntry
from ..errors import JobctlError, RedisOutOfMemory
from ..options.liveness import DEFAULT_LEASE_TTL
from ..store import keys
from ..store.connection import RedisOutage, where

if TYPE_CHECKING:
    from ..options.schedule import Schedule

MAX_PAUSE = 1.0  # seconds between passes at most, so that "every 1 second" runs on time
ON_TIME = 2.0  # a due time less than this old at a (re)start is not missed: a live scheduler is on it
STALLED = 5.0  # a scheduler whose previous pass is this old was effectively down (suspended, stuck)
# the claim only has to outlive a scheduler that read `last` just before the winner raised it;
# after winning, a scheduler checks `last` and the job record again, so a minute is plenty
CLAIM_TTL = 60
_LOOKUP_LIMIT = 1000  # due times fetched at once when looking for the latest missed one

# `last` only ever moves forward, whichever scheduler writes it and in whichever order
_RAISE_LAST = """
local current = tonumber(redis.call('GET', KEYS[1]))
if current == nil or current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


def _utc(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def latest_due(schedule: Schedule, after: datetime, until: datetime) -> datetime | None:
    """The most recent due time t with after < t <= until (due_between returns the oldest ones):
    look back through windows that double in length, so a long outage costs a few steps."""
    window = 1.0
    while True:
        start = max(after, _utc(until.timestamp() - window))
        times = schedule.due_between(start, until, limit=_LOOKUP_LIMIT)
        if len(times) == _LOOKUP_LIMIT:  # more than the limit in one window: the latest is further on
            return latest_due(schedule, times[-1], until) or times[-1]
        if times:
            return times[-1]
        if start == after:
            return None
        window *= 2


class Scheduler:
    def __init__(
        self,
        connection: redis.Redis,
        url: str,
        config: QueuesConfig,
        entries: list[RecurringEntry],
        reload: Callable[[], list[RecurringEntry]],
        source: str,
        *,
        lease_ttl: int = DEFAULT_LEASE_TTL,
    ):
        """`lease_ttl`: how long its heartbeat shows it alive (options/liveness.py)."""
        self.connection = connection
        self.layout = keys.layout_of(connection)
        self.lease_ttl = lease_ttl
        self.url = url
        self.config = config
        self.entries = entries
        self.reload = reload  # re-reads recurring.yml; raises JobctlError when it is invalid
        self.source = source
        self.name = f"{socket.gethostname()}.{os.getpid()}"
        self.log = logs.get()
        self._raise_last = connection.register_script(_RAISE_LAST)
        self._wake = threading.Event()
        self._stop_signal: int | None = None
        self._reload_requested = False
        self._previous_pass: float | None = None  # None: the next pass catches up missed runs

    # --- main loop ---------------------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hangup)
        self.log.info(
            "scheduler %s: started with %d entries from %s on Redis at %s",
            self.name,
            len(self.entries),
            self.source,
            where(self.url),
        )
        outage = RedisOutage(self.log, f"scheduler {self.name}", self.url)
        while self._stop_signal is None:
            if self._reload_requested:
                self._reload_requested = False
                self._reload()
            try:
                pause = self._pass(time.time())
            except Exception as exc:
                if not RedisOutage.covers(exc):
                    raise
                self._previous_pass = None  # missed runs follow catch_up
                pause = max(outage.failed(exc), 0.5)
            else:
                outage.ok()
            self._wake.wait(pause)
            self._wake.clear()
        self.log.info("scheduler %s: %s, stopped", self.name, signal.Signals(self._stop_signal).name)
        return 0

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop_signal = signum
        self._wake.set()

    def _on_hangup(self, signum: int, frame: FrameType | None) -> None:
        self._reload_requested = True
        self._wake.set()

    def _reload(self) -> None:
        try:
            entries = self.reload()
        except JobctlError as exc:
            self.log.error("scheduler %s: SIGHUP: keeping the running schedule: %s", self.name, exc)
            return
        self.entries = entries
        self.log.info("scheduler %s: SIGHUP: reloaded %d entries from %s", self.name, len(entries), self.source)

    # --- one pass ----------------------------------------------------------------------------

    def _pass(self, now: float) -> float:
        """Handle every entry's due times up to `now`; return how long to wait for the next pass."""
        resumed = self._previous_pass is None or now - self._previous_pass > STALLED
        for entry in self.entries:
            self._handle(entry, now, resumed)
        self._previous_pass = now
        next_runs = {e.name: int(e.schedule.next_after(_utc(now)).timestamp()) for e in self.entries if e.enabled}
        # on a cluster the two keys are in two slots, which no MULTI spans: a reader may see the
        # next runs of this pass with the heartbeat of the previous one, which is harmless
        with self.connection.pipeline(transaction=not self.layout.cluster) as pipe:
            pipe.delete(keys.SCHEDULER_NEXT_RUNS)
            if next_runs:
                # redis-py 8 types the mapping's keys invariantly, refusing str keys (redis-py 5 does not)
                pipe.hset(keys.SCHEDULER_NEXT_RUNS, mapping=next_runs)  # type: ignore[arg-type, unused-ignore]
            pipe.set(keys.SCHEDULER_HEARTBEAT, f"{now:.3f}", ex=self.lease_ttl)
            pipe.execute()
        until_next = min(next_runs.values(), default=now + MAX_PAUSE) - time.time()
        return min(max(until_next, 0.0), MAX_PAUSE) + 0.005  # just past the due second

    def _handle(self, entry: RecurringEntry, now: float, resumed: bool) -> None:
        last = self._last(entry.name)
        if last is None:
            # a new entry (or a new Redis): its runs start from now; NX, so schedulers agree
            self.connection.set(keys.scheduler_last(entry.name), int(now), nx=True)
            return
        if not entry.enabled:
            self._raise_last(
                keys=[keys.scheduler_last(entry.name)], args=[int(now)]
            )  # enabling it later misses nothing
            return
        on_time_from = float(last)
        if resumed and now - ON_TIME > last:
            self._catch_up(entry, last, now - ON_TIME)
            on_time_from = now - ON_TIME
        for due in entry.schedule.due_between(_utc(on_time_from), _utc(now)):
            self._run(entry, int(due.timestamp()))

    def _catch_up(self, entry: RecurringEntry, last: int, until: float) -> None:
        """Apply the entry's catch_up rule to its due times in (last, until], missed by all schedulers."""
        latest = latest_due(entry.schedule, _utc(last), _utc(until))
        if latest is None:
            return
        missed = entry.schedule.due_between(_utc(last), latest, limit=10_000)
        count = f"{len(missed)}{'+' if len(missed) == 10_000 else ''}"
        span = f"due {_iso(missed[0])} to {_iso(latest)}"
        due = int(latest.timestamp())
        action = "running the last one once" if entry.catch_up == "latest" else "skipped"
        logs.event(
            self.log,
            "scheduler.missed",
            "scheduler %s: %s: %s missed runs (%s); catch_up %s: %s",
            self.name,
            entry.name,
            count,
            span,
            entry.catch_up,
            action,
            entry=entry.name,
            missed=len(missed),
            first_due=int(missed[0].timestamp()),
            last_due=due,
            catch_up=entry.catch_up,
        )
        if entry.catch_up == "latest":
            self._run(entry, due)
        else:
            self._raise_last(keys=[keys.scheduler_last(entry.name)], args=[due])

    def _run(self, entry: RecurringEntry, due: int) -> None:
        """Enqueue the entry's run due at `due`, unless another scheduler has it or had it."""
        ident = keys.recurring_job_id(entry.name, due)
        layout = self.layout
        handled = (self._last(entry.name) or 0) >= due or self.connection.exists(layout.job(ident, entry.queue))
        if not handled:
            try:
                enqueue(
                    self.connection,
                    self.config,
                    entry.job,
                    list(entry.args),
                    entry.kwargs,
                    queue=entry.queue,
                    job_id=ident,
                    run_claim=(layout.scheduler_claim(entry.name, due, entry.queue), self.name, CLAIM_TTL),
                )
            except (AlreadyClaimed, DuplicateJob):
                return  # another scheduler stored this run
            except RedisOutOfMemory:
                raise  # the main loop backs off and tries this run again
            except JobctlError as exc:  # e.g. the job's module was changed under a running scheduler
                self.log.error(
                    "scheduler %s: %s: run due %s not enqueued: %s", self.name, entry.name, _iso(_utc(due)), exc
                )
            else:
                self.connection.hset(keys.SCHEDULER_LAST_RUNS, entry.name, str(due))
                logs.event(
                    self.log,
                    "scheduler.enqueued",
                    "scheduler %s: %s: enqueued %s (due %s)",
                    self.name,
                    entry.name,
                    ident,
                    _iso(_utc(due)),
                    entry=entry.name,
                    job_id=ident,
                    job=entry.job,
                    queue=entry.queue,
                    due=due,
                )
        self._raise_last(keys=[keys.scheduler_last(entry.name)], args=[due])

    def _last(self, entry: str) -> int | None:
        value = cast("bytes | None", self.connection.get(keys.scheduler_last(entry)))
        return int(value) if value is not None else None
