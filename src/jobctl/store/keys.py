"""Every Redis key jobctl reads or writes, named in one place.

The `rq:` keys are RQ's own layout (RQ 2.x), so `rq info`, rq-dashboard and `rq.job.Job.fetch`
see jobctl's queues, workers and jobs. The `jobctl:` keys hold what RQ has no place for: each
worker's in-flight list (what makes crash recovery exact), uniqueness claims and job tracking.
The Lua scripts under `lua/` are given these names (transitions.py passes them in KEYS; a key
that depends on what a script reads, it builds from a prefix given the same way), so that the
names are made here alone, never agreed on by copy.
"""

import hashlib
import re

QUEUES = "rq:queues"  # set of queue keys, as RQ keeps it
WORKERS = "rq:workers"  # set of worker keys, as RQ keeps it
SUPERVISORS = "jobctl:supervisors"  # zset: supervisor name -> last heartbeat (unix time)
ACTIVE_WORKERS = "jobctl:active-workers"  # set of worker names that may hold in-flight jobs
PAUSED = "jobctl:paused"  # set of queue names workers do not fetch from
SUSPENDED = "rq:suspended"  # RQ's `rq suspend` flag: while it exists, workers take no new job
JOB_PATHS = "jobctl:job-paths"  # hash: import path of a registered job's function -> job name
PROMOTER = "jobctl:promoter"  # string, expiring: the supervisor that promotes due jobs (a lease)
# hash that lives only inside one call of lua/enqueue_many.lua: the fields its jobs share, which
# each job's record is copied from (a COPY and a 2-field HSET cost a third of one HSET of them all)
ENQUEUE_TEMPLATE = "jobctl:enqueue-template"


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


def queue(name: str) -> str:
    return f"rq:queue:{name}"


def job(job_id: str) -> str:
    return f"rq:job:{job_id}"


def results(job_id: str) -> str:
    return f"rq:results:{job_id}"


def dependents(job_id: str) -> str:
    return f"rq:job:{job_id}:dependents"


def dependencies(job_id: str) -> str:
    """Set of the job's parents, where RQ 2.x keeps it (Job.dependencies_key: two colons)."""
    return f"rq:job::{job_id}:dependencies"


def old_dependencies(job_id: str) -> str:
    """Where jobctl kept a job's parents before it wrote RQ's set: deferred jobs stored by an earlier
    version still wait there, so both are read."""
    return f"rq:job:{job_id}:dependencies"


def started(queue_name: str) -> str:
    return f"rq:wip:{queue_name}"


def scheduled(queue_name: str) -> str:
    return f"rq:scheduled:{queue_name}"


def deferred(queue_name: str) -> str:
    return f"rq:deferred:{queue_name}"


def finished(queue_name: str) -> str:
    return f"rq:finished:{queue_name}"


def dead(queue_name: str) -> str:
    return f"rq:failed:{queue_name}"  # RQ's FailedJobRegistry is jobctl's dead set


def canceled(queue_name: str) -> str:
    return f"rq:canceled:{queue_name}"


def worker(name: str) -> str:
    return f"rq:worker:{name}"


def workers_of_queue(queue_name: str) -> str:
    return f"rq:workers:{queue_name}"


def active(worker_name: str) -> str:
    """The worker's in-flight list: a job id sits here from fetch until its outcome is written."""
    return f"jobctl:active:{worker_name}"


def wake(queue_name: str) -> str:
    """Pub/sub channel: a message when a job lands on the empty queue, for idle workers, and
    PAUSES_CHANGED when the queue is paused or resumed."""
    return f"jobctl:wake:{queue_name}"


PAUSES_CHANGED = "pauses"  # on a queue's wake channel: workers look at the paused queues again


def commands(worker_name: str) -> str:
    """RQ's pub/sub channel for a worker's commands ({"command": "stop-job", "job_id": ...}),
    so that `jobctl cancel` and RQ's send_stop_job_command reach jobctl workers alike."""
    return f"rq:pubsub:{worker_name}"


def job_output(job_id: str, attempt: int) -> str:
    """String: the last bytes (joboutput.OUTPUT_LIMIT) one attempt of the job printed and logged."""
    return f"jobctl:output:{job_id}:{attempt}"


def job_attempt(job_id: str, attempt: int) -> str:
    """Hash of one attempt, written by joboutput: started, ended (unix time), written (bytes of
    output in all), traceback (of the exception that ended it)."""
    return f"jobctl:attempt:{job_id}:{attempt}"


def unique(claim: str) -> str:
    return f"jobctl:unique:{claim}"


# --- the scheduler (scheduler.py) -------------------------------------------------------------

SCHEDULER_NEXT_RUNS = "jobctl:scheduler:next"  # hash: entry name -> next due time (unix seconds)
SCHEDULER_LAST_RUNS = "jobctl:scheduler:ran"  # hash: entry name -> due time of the latest run enqueued
SCHEDULER_HEARTBEAT = "jobctl:scheduler:heartbeat"  # string: unix time of the latest pass, expiring


def scheduler_claim(entry: str, due: int) -> str:
    """Held (SET NX with the enqueue, value: the scheduler's name) by the scheduler that stored this run."""
    return f"jobctl:scheduler:claim:{entry}:{due}"


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

BATCHES_DUE = "jobctl:batches-due"  # sorted set: JSON [batch, callback, generation, counts...] -> when due


def batch(batch_id: str) -> str:
    """Hash: a batch's counts (total, pending, succeeded, failed), sealed, complete, generation
    (completions so far), completed_at, success_due (the generation on_success was due at), its
    callbacks' job names (on_complete, on_success), description, created_at."""
    return f"jobctl:batch:{batch_id}"


def batch_jobs(batch_id: str) -> str:
    """Set: the ids of the batch's jobs."""
    return f"{batch(batch_id)}:jobs"


def batch_failed(batch_id: str) -> str:
    """Set: the ids of the batch's jobs that ended dead or canceled."""
    return f"{batch(batch_id)}:failed"


def batch_claim(batch_id: str, callback: str, generation: int) -> str:
    """Held (SET NX with the callback's enqueue) once the callback of that completion is stored."""
    return f"{batch(batch_id)}:claim:{callback}:{generation}"


def batch_callback_id(batch_id: str, callback: str, generation: int) -> str:
    """The callback job's id: batch-<id>-<complete|success>-<generation>."""
    return f"batch-{batch_id}-{callback}-{generation}"


# --- job tracking, written by lua/lib.lua's record_execution, bounded in size -------------------

RECENT_FAILURES = "jobctl:failures"  # list, newest first: the last 100 failed executions (JSON)
PROCESSED = "jobctl:stats:processed"  # hash: "job|queue|outcome" (finished or failed) -> executions
JOB_TYPES = "jobctl:stats:jobs"  # set: every job name that ever ran
HISTORY_LENGTH = 100
RUN_TIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
THROUGHPUT_WINDOW = 10  # seconds per throughput window


def job_stats(job_name: str) -> str:
    """Hash: runs, successes, failures, retries, dead, run_seconds (sum), max_run_seconds,
    last_run_at, last_error, last_error_at."""
    return f"jobctl:stats:job:{job_name}"


def queue_stats(queue_name: str) -> str:
    """Hash: the same fields as job_stats, for every job of the queue."""
    return f"jobctl:stats:queue:{queue_name}"


def run_time_histogram(job_name: str) -> str:
    """Hash: upper bound of a RUN_TIME_BUCKETS bucket (Lua's tostring, '+Inf' last) -> runs in it
    (not cumulative)."""
    return f"jobctl:runtime:job:{job_name}"


def throughput(queue_name: str, window: int) -> str:
    """Hash for one THROUGHPUT_WINDOW (window = unix time // THROUGHPUT_WINDOW): finished,
    failed, run_seconds. Expires after three minutes."""
    return f"jobctl:throughput:{queue_name}:{window}"


MINUTES_TTL = 8 * 86400  # seconds: seven days of per-minute history are always complete


def minutes(queue_name: str, day: int) -> str:
    """Hash for one UTC day (day = unix time // 86400) of a queue: "<minute of the day>:finished"
    and "<minute of the day>:failed" -> executions in that minute. Expires after MINUTES_TTL;
    the dashboard's throughput charts read it."""
    return f"jobctl:minutes:{queue_name}:{day}"


def history(job_name: str) -> str:
    """List, newest first: the last HISTORY_LENGTH executions of the job type, each a JSON object
    {id, job, queue, args, kwargs, attempt, outcome, run_seconds, at, error, worker}."""
    return f"jobctl:history:job:{job_name}"


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


def slots(job_name: str) -> str:
    """Hash: job id -> worker name, for each running job of a type with max_concurrency."""
    return f"jobctl:slots:{job_name}"


# --- what the Lua scripts know of this file ------------------------------------------------------

# How long an ended job is kept when its record does not say (a record another tool wrote):
RQ_RESULT_TTL = 500  # RQ's default result_ttl, for finished jobs
FAILURE_TTL = 30 * 86400  # the queues' default failure_ttl (config.py), for dead and canceled jobs


def ended(status: str, queue_name: str) -> str:
    """The registry of the queue's ended jobs of an RQ status: finished, failed (dead) or canceled."""
    return {"finished": finished, "failed": dead, "canceled": canceled}[status](queue_name)


def web_session(digest: str) -> str:
    """An open dashboard session, named by an HMAC of its id (web/auth.py); it expires with it."""
    return f"jobctl:web-session:{digest}"
