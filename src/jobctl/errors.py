"""The exceptions jobctl raises, and the one jobs raise to say "do not retry".

Every exception of the core is defined here, so that a caller finds in one place what it may
have to catch. Those deriving from JobctlError are reported by the CLI as one line
with their exit status; the others are caught by the code that called.
"""

from __future__ import annotations


class JobctlError(Exception):
    """An error the CLI reports as one line and exit status 2 (bad usage, config, Redis)."""

    exit_code = 2


class ConfigError(JobctlError):
    """queue.yml / recurring.yml (or a job module) is invalid; the message names file, entry, key."""


class UsageError(JobctlError):
    """A command-line argument is invalid; the message names the argument."""


class NotJSON(UsageError, TypeError):
    """A job argument JSON cannot carry (a datetime, a set, an object): nothing was enqueued."""


class RedisUnavailable(JobctlError):
    """Redis does not answer; the message names host and port, never the password."""


class UnknownJob(JobctlError):
    """A job name or job id that nothing knows about."""


class UnknownParent(UsageError):
    """A job given as a dependency (--depends-on, depends_on=) does not exist: nothing was enqueued."""

    def __init__(self, job_id: str):
        super().__init__(f"--depends-on: no job with id {job_id!r}")
        self.job_id = job_id


class UnknownBatch(UsageError, LookupError):
    """A batch (--batch, jobctl.batch(id)) that does not exist, or is complete and so takes no
    more jobs: nothing was enqueued."""

    def __init__(self, batch_id: str, complete: bool = False):
        what = "is complete: it takes no more jobs" if complete else "does not exist"
        super().__init__(f"batch {batch_id!r} {what}")
        self.batch_id = batch_id


class UnknownEvent(JobctlError):
    """An event no handler subscribed to: most likely a typo, or the handlers' module not loaded."""


class ArgumentMismatch(JobctlError, TypeError):
    """Arguments that do not fit the job's signature: exit status 2 on the command line, a
    TypeError for Python callers."""


class OperationFailed(JobctlError):
    """An operation that was valid but could not be carried out (exit status 1)."""

    exit_code = 1


class NotReplicated(OperationFailed):
    """An enqueue that fewer replicas acknowledged in time than JOBCTL_ENQUEUE_REPLICAS asks:
    the job is stored on its master (it may run) but could be lost if that master fails now."""


class RedisOutOfMemory(OperationFailed):
    """Redis refused a write: it is at its maxmemory with a noeviction policy."""


class QueueFull(OperationFailed):
    """The queue holds its queue.yml max_size of queued jobs."""


class DuplicateJob(Exception):
    """The job (same --job-id, or same name and arguments with --unique) is already active."""

    def __init__(self, job_id: str, state: str, message: str | None = None):
        super().__init__(message or f"job {job_id} is already {state}")
        self.job_id, self.state = job_id, state


class AlreadyClaimed(Exception):
    """The run claim given to `enqueue` is held: another scheduler stored this run."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived during a long operation (`enqueue --from`); raised where it is
    safe to stop, between two stored batches."""


class PayloadError(ValueError):
    """A job record whose payload jobctl cannot read; the message says what it is and what to do."""


class ResultError(ValueError):
    """A job's return value that JSON cannot encode: retrying cannot help."""


class JobNotFound(UnknownJob, LookupError):
    """No job has this id (any more): its record expired after its ttl, or was deleted."""


class JobFailed(Exception):
    """The job is dead (its retries are used up, or it raised PermanentError): `error_type` and
    `message` are those of the exception that ended its last attempt, `traceback` its text."""

    def __init__(self, job_id: str, error_type: str, message: str, traceback: str):
        super().__init__(
            f"job {job_id} failed: {error_type}: {message}" if message else f"job {job_id} failed: {error_type}"
        )
        self.job_id, self.error_type, self.message, self.traceback = job_id, error_type, message, traceback

    @classmethod
    def from_line(cls, job_id: str, line: str, traceback: str) -> JobFailed:
        """From an error line as the worker records it: "ValueError: the message"."""
        error_type, _, message = line.partition(": ")
        return cls(job_id, error_type, message, traceback)


class BreakerOpen(Exception):
    """A circuit breaker is open (queue.yml `breakers:`): `with jobctl.breaker(name):` raised it
    instead of running its block. Let it escape the job: the worker then defers the job to
    `until` (unix time, when the breaker may let it run) without using an attempt."""

    def __init__(self, name: str, until: float):
        super().__init__(f"circuit breaker {name!r} is open")
        self.name, self.until = name, until


class JobCanceled(Exception):
    """The job was canceled (by an operator, or with a parent that failed) before it ended."""

    def __init__(self, job_id: str, reason: str):
        super().__init__(f"job {job_id} was canceled: {reason}")
        self.job_id, self.reason = job_id, reason


class BlockingCall(RuntimeError):
    """A blocking call of the Python API made from inside a running event loop: it would stop
    every other task of the loop while it waits; the message names the async form to await."""


class PermanentError(Exception):
    """Raise from a job to fail it without retrying: it goes straight to the dead set."""


# --- the worker's own control flow (worker.py, executor.py) ---------------------------------------


class JobTimeout(BaseException):
    """Raised inside a job that ran past its timeout. A BaseException, so that a job's own
    `except Exception` does not swallow it."""


class JobStopped(BaseException):
    """Raised inside a job an operator asked to stop (`jobctl cancel`, RQ's send_stop_job_command)."""


class LeaseLost(Exception):
    """The worker's lease is gone (it was presumed dead and its jobs recovered): the script wrote
    nothing, and the worker must end."""
