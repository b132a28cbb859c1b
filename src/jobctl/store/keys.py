"""Every Redis key jobctl reads or writes, named in one place.

The `rq:` keys are RQ's own layout (RQ 2.x), so `rq info`, rq-dashboard and `rq.job.Job.fetch`
see jobctl's queues, workers and jobs. The `jobctl:` keys hold what RQ has no place for: each
worker's in-flight list (what makes crash recovery exact), uniqueness claims and job tracking.
The Lua scripts under `lua/` are given these names (transitions.py passes them in KEYS; a key
that depends on what a script reads, it builds from a prefix given the same way), so that the
names are made here alone, never agreed on by copy.

On a Redis Cluster (Layout, CLUSTER) every key that belongs to a queue carries the queue's hash
tag right after its fixed prefix (rq:queue:{emails}, rq:job:{emails}:<id>): a script's keys
then share one slot, and different queues spread over the masters. A job type's state (stats,
history, concurrency slots, rate windows) is kept per queue there, and so is a worker's (its
hash, lease and in-flight list, in the slot of each of its queues). RQ's own layout, PLAIN, is what every other Redis gets, byte for byte;
the module's functions are PLAIN's.
"""

import hashlib
import re
import sys
from typing import Any

QUEUES = "rq:queues"  # set of queue keys, as RQ keeps it
WORKERS = "rq:workers"  # set of worker keys, as RQ keeps it
SUPERVISORS = "jobctl:supervisors"  # zset: supervisor name -> last heartbeat (unix time)
PAUSED = "jobctl:paused"  # set of queue names workers do not fetch from
SUSPENDED = "rq:suspended"  # RQ's `rq suspend` flag: while it exists, workers take no new job
JOB_PATHS = "jobctl:job-paths"  # hash: import path of a registered job's function -> job name


# A job id is part of its keys (rq:job:<id>, rq:job:<id>:dependents): ':' and glob characters
# would let an id name another job's keys, so ids given from outside are held to this.
JOB_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
# RQ's own rule for a job id (rq.job.JOB_ID_PATTERN): RQ's Job refuses any other id
RQ_JOB_ID = re.compile(r"[A-Za-z0-9_-]+")
# the ids jobctl makes itself for recurring runs (recurring_job_id), entry names held to JOB_ID
RECURRING_JOB_ID = re.compile(r"cron-[A-Za-z0-9_-]{1,138}-\d{1,12}")
# what they were before they became valid RQ ids, cron:<entry>:<due>: runs stored by an earlier
# version may still be in Redis, to be shown, canceled and run
OLD_RECURRING_JOB_ID = re.compile(r"cron:[A-Za-z0-9_.-]{1,128}:\d{1,12}")


def is_job_id(text: str) -> bool:
    """Whether `text` can name a job: an id given from outside, or a recurring run's."""
    return bool(JOB_ID.fullmatch(text) or RECURRING_JOB_ID.fullmatch(text) or OLD_RECURRING_JOB_ID.fullmatch(text))


class Layout:
    """How keys are named: RQ's layout (PLAIN), or by queue for a Redis Cluster (CLUSTER). A key
    of a job, a job type or a worker needs its queue in the cluster layout; PLAIN ignores it."""

    def __init__(self, cluster: bool) -> None:
        self.cluster = cluster

    def __repr__(self) -> str:
        return "CLUSTER" if self.cluster else "PLAIN"

    def tag(self, queue_name: str) -> str:
        """How the queue stands in its own keys (rq:queue:<this>): its name, or its hash tag."""
        return f"{{{queue_name}}}" if self.cluster else queue_name

    def scope(self, queue_name: str) -> str:
        """What comes before a job id, a job type or a worker in keys of the queue's slot: nothing,
        or the queue's hash tag and a colon."""
        if not self.cluster:
            return ""
        if not queue_name:
            # a caller with an id alone finds the queue first (api/reads.py, find_queue)
            raise ValueError("a key of a job, job type or worker needs its queue on a Redis Cluster")
        return f"{{{queue_name}}}:"

    def queue_named(self, key: str) -> str | None:
        """The queue whose list `key` is (a member of RQ's set of queues), or None."""
        name = key.removeprefix("rq:queue:")
        if name == key:
            return None
        if self.cluster:
            return name[1:-1] if name.startswith("{") and name.endswith("}") and len(name) > 2 else None
        return name

    # --- a queue's list and registries ---

    def queue(self, name: str) -> str:
        return f"rq:queue:{self.tag(name)}"

    def started(self, queue_name: str) -> str:
        return f"rq:wip:{self.tag(queue_name)}"

    def scheduled(self, queue_name: str) -> str:
        return f"rq:scheduled:{self.tag(queue_name)}"

    def deferred(self, queue_name: str) -> str:
        return f"rq:deferred:{self.tag(queue_name)}"

    def finished(self, queue_name: str) -> str:
        return f"rq:finished:{self.tag(queue_name)}"

    def dead(self, queue_name: str) -> str:
        return f"rq:failed:{self.tag(queue_name)}"  # RQ's FailedJobRegistry is jobctl's dead set

    def canceled(self, queue_name: str) -> str:
        return f"rq:canceled:{self.tag(queue_name)}"

    def ended(self, status: str, queue_name: str) -> str:
        """The registry of the queue's ended jobs of an RQ status: finished, failed (dead) or canceled."""
        return {"finished": self.finished, "failed": self.dead, "canceled": self.canceled}[status](queue_name)

    def workers_of_queue(self, queue_name: str) -> str:
        return f"rq:workers:{self.tag(queue_name)}"

    # --- a job's ---

    def job(self, job_id: str, queue_name: str = "") -> str:
        return f"rq:job:{self.scope(queue_name)}{job_id}"

    def results(self, job_id: str, queue_name: str = "") -> str:
        return f"rq:results:{self.scope(queue_name)}{job_id}"

    def dependents(self, job_id: str, queue_name: str = "") -> str:
        return f"{self.job(job_id, queue_name)}:dependents"

    def dependencies(self, job_id: str, queue_name: str = "") -> str:
        """Set of the job's parents, where RQ 2.x keeps it (Job.dependencies_key: two colons)."""
        return f"{self.job('', queue_name)}:{job_id}:dependencies"

    def old_dependencies(self, job_id: str, queue_name: str = "") -> str:
        """Where jobctl kept a job's parents before it wrote RQ's set: deferred jobs stored by an
        earlier version still wait there, so both are read."""
        return f"{self.job(job_id, queue_name)}:dependencies"

    def job_output(self, job_id: str, attempt: int, queue_name: str = "") -> str:
        """String: the last bytes (joboutput.OUTPUT_LIMIT) one attempt of the job printed and logged."""
        return f"jobctl:output:{self.scope(queue_name)}{job_id}:{attempt}"

    def job_attempt(self, job_id: str, attempt: int, queue_name: str = "") -> str:
        """Hash of one attempt, written by joboutput: started, ended (unix time), written (bytes of
        output in all), traceback (of the exception that ended it)."""
        return f"jobctl:attempt:{self.scope(queue_name)}{job_id}:{attempt}"

    def unique(self, claim: str, queue_name: str = "") -> str:
        return f"jobctl:unique:{self.scope(queue_name)}{claim}"

    # --- a worker's (on a cluster, in the slot of each queue it serves) ---

    def worker(self, name: str, queue_name: str = "") -> str:
        return f"rq:worker:{self.scope(queue_name)}{name}"

    def active(self, worker_name: str, queue_name: str = "") -> str:
        """The worker's in-flight list: a job id sits here from fetch until its outcome is written."""
        return f"jobctl:active:{self.scope(queue_name)}{worker_name}"

    def active_workers(self, queue_name: str = "") -> str:
        """Set of worker names that may hold in-flight jobs (of the queue, on a cluster)."""
        return f"jobctl:active-workers{self._suffix(queue_name)}"

    # --- what is fleet-wide on one Redis, and per queue on a cluster (the scripts touch it) ---

    def _suffix(self, queue_name: str) -> str:
        return f":{self.tag(queue_name)}" if self.cluster else ""

    def promoter(self, queue_name: str = "") -> str:
        """String, expiring: the supervisor that promotes due jobs (a lease)."""
        return f"jobctl:promoter{self._suffix(queue_name)}"

    def enqueue_template(self, queue_name: str = "") -> str:
        """Hash that lives only inside one call of lua/enqueue_many.lua: the fields its jobs share,
        which each job's record is copied from (a COPY and a 2-field HSET cost a third of one HSET
        of them all)."""
        return f"jobctl:enqueue-template{self._suffix(queue_name)}"

    def batches_due(self, batch_id: str = "") -> str:
        """Sorted set: JSON [batch, callback, generation, counts...] -> when due. Fleet-wide on one
        Redis; on a cluster one per batch, in the batch's slot (BATCHES_WITH_DUE lists them)."""
        return f"jobctl:batches-due{self._suffix(batch_id)}"

    def outbox(self, queue_name: str = "") -> str:
        """List, on a Redis Cluster: JSON entries that a script of this queue's slot wrote for
        another queue's slot (a job there waits on a parent here, or the reverse), which the
        promoter applies there and then removes (lua/apply.lua). Unused on one Redis."""
        return f"jobctl:outbox{self._suffix(queue_name)}"

    def remote_dependents(self, job_id: str, queue_name: str = "") -> str:
        """Set, on a Redis Cluster: the job's dependents on other queues, each a JSON [id, queue]."""
        return f"{self.job(job_id, queue_name)}:remote-dependents"

    def remote_parents(self, job_id: str, queue_name: str = "") -> str:
        """Hash, on a Redis Cluster: the job's parents on other queues that have not settled it
        yet, each a JSON [id, queue], with '' (waiting) or the end of it that dooms the job.
        Beside it, '<this key>-heard' holds how many revivals of each the job heard of
        (lua/lib.lua, apply_entry)."""
        return f"{self.job(job_id, queue_name)}:remote-parents"

    def batch(self, batch_id: str) -> str:
        """Hash: a batch's counts (total, pending, succeeded, failed), sealed, complete, generation
        (completions so far), completed_at, success_due (the generation on_success was due at),
        its callbacks' job names (on_complete, on_success), description, created_at. On a cluster
        in the batch's own slot (its id as the hash tag), with its sets (batch_jobs ...); its jobs
        may be on any queue, and tell it their outcomes through their queue's outbox."""
        return f"jobctl:batch:{self.tag(batch_id)}"

    def batch_jobs(self, batch_id: str) -> str:
        """Set: the ids of the batch's jobs."""
        return f"{self.batch(batch_id)}:jobs"

    def batch_failed(self, batch_id: str) -> str:
        """Set: the ids of the batch's jobs that ended dead or canceled."""
        return f"{self.batch(batch_id)}:failed"

    def batch_succeeded(self, batch_id: str) -> str:
        """Set, on a cluster: the ids of the batch's jobs counted as finished, so that an outcome
        delivered twice through an outbox counts once (one Redis counts in the outcome's script)."""
        return f"{self.batch(batch_id)}:succeeded"

    def batch_claim(self, batch_id: str, callback: str, generation: int, queue_name: str = "") -> str:
        """Held (SET NX with the callback's enqueue) once the callback of that completion is
        stored; on a cluster in the slot of the callback's queue, where the enqueue script takes it."""
        if self.cluster:
            return f"jobctl:batch-claim:{self.scope(queue_name)}{batch_id}:{callback}:{generation}"
        return f"{self.batch(batch_id)}:claim:{callback}:{generation}"

    def scheduler_claim(self, entry: str, due: int, queue_name: str = "") -> str:
        """Held (SET NX with the enqueue, value: the scheduler's name) by the scheduler that stored
        this run; on a cluster in the slot of the run's queue, where the enqueue script takes it."""
        return f"jobctl:scheduler:claim:{self.scope(queue_name)}{entry}:{due}"

    # --- job tracking, written by lua/track.lua, bounded in size ---

    def recent_failures(self, queue_name: str = "") -> str:
        """List, newest first: the last 100 failed executions (JSON)."""
        return f"jobctl:failures{self._suffix(queue_name)}"

    def processed(self, queue_name: str = "") -> str:
        """Hash: "job|queue|outcome" (finished or failed) -> executions."""
        return f"jobctl:stats:processed{self._suffix(queue_name)}"

    def job_types(self, queue_name: str = "") -> str:
        """Set: every job name that ever ran."""
        return f"jobctl:stats:jobs{self._suffix(queue_name)}"

    def job_stats(self, job_name: str, queue_name: str = "") -> str:
        """Hash: runs, successes, failures, retries, dead, run_seconds (sum), max_run_seconds,
        last_run_at, last_error, last_error_at."""
        return f"jobctl:stats:job:{self.scope(queue_name)}{job_name}"

    def queue_stats(self, queue_name: str) -> str:
        """Hash: the same fields as job_stats, for every job of the queue."""
        return f"jobctl:stats:queue:{self.tag(queue_name)}"

    def run_time_histogram(self, job_name: str, queue_name: str = "") -> str:
        """Hash: upper bound of a RUN_TIME_BUCKETS bucket (Lua's tostring, '+Inf' last) -> runs in
        it (not cumulative)."""
        return f"jobctl:runtime:job:{self.scope(queue_name)}{job_name}"

    def throughput(self, queue_name: str, window: int) -> str:
        """Hash for one THROUGHPUT_WINDOW (window = unix time // THROUGHPUT_WINDOW): finished,
        failed, run_seconds. Expires after three minutes."""
        return f"jobctl:throughput:{self.tag(queue_name)}:{window}"

    def minutes(self, queue_name: str, day: int) -> str:
        """Hash for one UTC day (day = unix time // 86400) of a queue: "<minute of the day>:finished"
        and "<minute of the day>:failed" -> executions in that minute. Expires after MINUTES_TTL;
        the dashboard's throughput charts read it."""
        return f"jobctl:minutes:{self.tag(queue_name)}:{day}"

    def history(self, job_name: str, queue_name: str = "") -> str:
        """List, newest first: the last HISTORY_LENGTH executions of the job type, each a JSON
        object {id, job, queue, args, kwargs, attempt, outcome, run_seconds, at, error, worker}."""
        return f"jobctl:history:job:{self.scope(queue_name)}{job_name}"

    # --- rate and concurrency limits (limits.py; enforced by lua/lib.lua's may_start) ---

    def job_rate_window(self, job_name: str, queue_name: str = "") -> str:
        """The rate window (rate_window) of the job type's rate_limit."""
        return rate_window(job_rate_limit(f"{self.scope(queue_name)}{job_name}"))

    def queue_rate_window(self, queue_name: str) -> str:
        """The rate window (rate_window) of the queue's rate_limit."""
        return rate_window(queue_rate_limit(self.tag(queue_name)))

    def slots(self, job_name: str, queue_name: str = "") -> str:
        """Hash: job id -> worker name, for each running job of a type with max_concurrency."""
        return f"jobctl:slots:{self.scope(queue_name)}{job_name}"

    def breaker(self, breaker_name: str, queue_name: str = "") -> str:
        """Hash: state (closed|open), opened_at, open_until, opens (how many times it opened), the
        half-open trial's job (trial) and worker (trial_worker)."""
        return f"jobctl:breaker:{self.scope(queue_name)}{breaker_name}"

    def breaker_failures(self, breaker_name: str, queue_name: str = "") -> str:
        """Zset of the counted failures (member: job id and time, score: unix time) within the window."""
        return f"{self.breaker(breaker_name, queue_name)}:failures"


PLAIN = Layout(cluster=False)
CLUSTER = Layout(cluster=True)


def layout_of(connection: Any) -> Layout:
    """The layout of the Redis a client talks to: CLUSTER for redis-py's cluster clients
    (store/connection.py makes one for a node of a Redis Cluster), PLAIN for any other."""
    # redis-py's modules are looked up, not imported: a process that made no such client has none
    clients = [
        getattr(sys.modules.get(module), "RedisCluster", None) for module in ("redis.cluster", "redis.asyncio.cluster")
    ]
    return CLUSTER if any(client and isinstance(connection, client) for client in clients) else PLAIN


# RQ's layout, as every Redis but a cluster has it
queue = PLAIN.queue
started = PLAIN.started
scheduled = PLAIN.scheduled
deferred = PLAIN.deferred
finished = PLAIN.finished
dead = PLAIN.dead
canceled = PLAIN.canceled
ended = PLAIN.ended
workers_of_queue = PLAIN.workers_of_queue
job = PLAIN.job
results = PLAIN.results
dependents = PLAIN.dependents
dependencies = PLAIN.dependencies
old_dependencies = PLAIN.old_dependencies
job_output = PLAIN.job_output
unique = PLAIN.unique
worker = PLAIN.worker
active = PLAIN.active
batch = PLAIN.batch
job_stats = PLAIN.job_stats
queue_stats = PLAIN.queue_stats
run_time_histogram = PLAIN.run_time_histogram
minutes = PLAIN.minutes
history = PLAIN.history
slots = PLAIN.slots
breaker = PLAIN.breaker
breaker_failures = PLAIN.breaker_failures
scheduler_claim = PLAIN.scheduler_claim
ACTIVE_WORKERS = PLAIN.active_workers()
PROMOTER = PLAIN.promoter()
BATCHES_DUE = PLAIN.batches_due()
RECENT_FAILURES = PLAIN.recent_failures()


def wake(queue_name: str) -> str:
    """Pub/sub channel: a message when a job lands on the empty queue, for idle workers, and
    PAUSES_CHANGED when the queue is paused or resumed."""
    return f"jobctl:wake:{queue_name}"


PAUSES_CHANGED = "pauses"  # on a queue's wake channel: workers look at the paused queues again


def commands(worker_name: str) -> str:
    """RQ's pub/sub channel for a worker's commands ({"command": "stop-job", "job_id": ...}),
    so that `jobctl cancel` and RQ's send_stop_job_command reach jobctl workers alike."""
    return f"rq:pubsub:{worker_name}"


# --- the scheduler (scheduler.py) -------------------------------------------------------------

SCHEDULER_NEXT_RUNS = "jobctl:scheduler:next"  # hash: entry name -> next due time (unix seconds)
SCHEDULER_LAST_RUNS = "jobctl:scheduler:ran"  # hash: entry name -> due time of the latest run enqueued
SCHEDULER_HEARTBEAT = "jobctl:scheduler:heartbeat"  # string: unix time of the latest pass, expiring


def scheduler_last(entry: str) -> str:
    """The latest due time (unix seconds) of the entry that a scheduler has handled."""
    return f"jobctl:scheduler:last:{entry}"


def recurring_job_id(entry: str, due: int) -> str:
    """Every run of a recurring entry has an id of its own, cron-<entry>-<due>, which RQ's Job
    accepts (RQ refuses ':' and '.'). An entry name with a '.' gets '_' for it and 8 hex digits of
    the name's digest, so that entries 'a.b' and 'a_b' never share ids."""
    if RQ_JOB_ID.fullmatch(entry):
        return f"cron-{entry}-{due}"
    digest = hashlib.sha256(entry.encode()).hexdigest()[:8]
    return f"cron-{entry.replace('.', '_')}_{digest}-{due}"


# --- batches (api/batches.py; counted by lua/lib.lua's batch_ended) ------------------------------

batch_jobs = PLAIN.batch_jobs
batch_failed = PLAIN.batch_failed
# on a cluster: the batches whose due sets (Layout.batches_due) may hold callbacks to store
BATCHES_WITH_DUE = "jobctl:batches-with-due"


def batch_callback_id(batch_id: str, callback: str, generation: int) -> str:
    """The callback job's id: batch-<id>-<complete|success>-<generation>."""
    return f"batch-{batch_id}-{callback}-{generation}"


# --- job tracking, written by lua/lib.lua's record_execution, bounded in size -------------------

HISTORY_LENGTH = 100
RUN_TIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
THROUGHPUT_WINDOW = 10  # seconds per throughput window


MINUTES_TTL = 8 * 86400  # seconds: seven days of per-minute history are always complete


# --- rate and concurrency limits (limits.py; enforced by lua/lib.lua's may_start) --------------


def job_rate_limit(job_name: str) -> str:
    """Limit name (limits.py): "count period_seconds" of the job type's rate_limit."""
    return f"rate:job:{job_name}"


def queue_rate_limit(queue_name: str) -> str:
    """Limit name (limits.py): "count period_seconds" of the queue's rate_limit."""
    return f"rate:queue:{queue_name}"


def job_concurrency_limit(job_name: str) -> str:
    """Limit name (limits.py): the job type's max_concurrency."""
    return f"concurrency:job:{job_name}"


def rate_window(field: str) -> str:
    """Zset of the starts (member: job id and time, score: unix time) within the rate's period,
    for the limit `field` (job_rate_limit or queue_rate_limit)."""
    return f"jobctl:{field}"


def rate_next(field: str) -> str:
    """String, expiring: when the next job held back by that rate is to come back (spreads them)."""
    return f"jobctl:{field}:next"


# --- circuit breakers (config/limits.py; enforced by lua/lib.lua's may_start, recorded by the
# outcome scripts and breaker.lua) -----------------------------------------------------------------


def job_breaker(job_name: str) -> str:
    """Limit name (limits.py): the name of the job type's breaker."""
    return f"breaker:job:{job_name}"


def breaker_settings(breaker_name: str) -> str:
    """Limit name (limits.py): "failures window_seconds cooldown_seconds" of a breaker."""
    return f"breaker:{breaker_name}"


# --- what the Lua scripts know of this file ------------------------------------------------------

# How long an ended job is kept when its record does not say (a record another tool wrote):
RQ_RESULT_TTL = 500  # RQ's default result_ttl, for finished jobs
FAILURE_TTL = 30 * 86400  # the queues' default failure_ttl (config.py), for dead and canceled jobs


def web_session(digest: str) -> str:
    """An open dashboard session, named by an HMAC of its id (web/auth.py); it expires with it."""
    return f"jobctl:web-session:{digest}"
