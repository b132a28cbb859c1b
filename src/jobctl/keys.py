"""Every Redis key jobctl reads or writes, named in one place.

The `rq:` keys are RQ's own layout (RQ 2.x), so `rq info`, rq-dashboard and `rq.job.Job.fetch`
see jobctl's queues, workers and jobs. The `jobctl:` keys hold what RQ has no place for: each
worker's in-flight list (what makes crash recovery exact), uniqueness claims and job tracking.
The Lua scripts under `lua/` build the same names; `lua/lib.lua` mirrors this file.
"""

QUEUES = "rq:queues"  # set of queue keys, as RQ keeps it
WORKERS = "rq:workers"  # set of worker keys, as RQ keeps it
SUPERVISORS = "jobctl:supervisors"  # zset: supervisor name -> last heartbeat (unix time)
ACTIVE_WORKERS = "jobctl:active-workers"  # set of worker names that may hold in-flight jobs


def queue(name: str) -> str:
    return f"rq:queue:{name}"


def job(job_id: str) -> str:
    return f"rq:job:{job_id}"


def results(job_id: str) -> str:
    return f"rq:results:{job_id}"


def dependents(job_id: str) -> str:
    return f"rq:job:{job_id}:dependents"


def dependencies(job_id: str) -> str:
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


def unique(claim: str) -> str:
    return f"jobctl:unique:{claim}"


def job_stats(job_name: str) -> str:
    return f"jobctl:stats:job:{job_name}"


def queue_stats(queue_name: str) -> str:
    return f"jobctl:stats:queue:{queue_name}"
