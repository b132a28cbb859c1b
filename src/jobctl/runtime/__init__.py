"""The processes: worker, executor, supervisor, scheduler, job tracking, and RQ's own worker for
engine: rq queues."""
