"""The exceptions jobctl raises, and the one jobs raise to say "do not retry"."""


class JobctlError(Exception):
    """An error the CLI reports as one line and exit status 2 (bad usage, config, Redis)."""

    exit_code = 2


class ConfigError(JobctlError):
    """queue.yml / recurring.yml (or a job module) is invalid; the message names file, entry, key."""


class UsageError(JobctlError):
    """A command-line argument is invalid; the message names the argument."""


class RedisUnavailable(JobctlError):
    """Redis does not answer; the message names host and port, never the password."""


class UnknownJob(JobctlError):
    """A job name or job id that nothing knows about."""


class OperationFailed(JobctlError):
    """An operation that was valid but could not be carried out (exit status 1)."""

    exit_code = 1


class RedisOutOfMemory(OperationFailed):
    """Redis refused a write: it is at its maxmemory with a noeviction policy."""


class PermanentError(Exception):
    """Raise from a job to fail it without retrying: it goes straight to the dead set."""
