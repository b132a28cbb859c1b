"""Jobs the integration tests run. Copied into each test's project directory and named with
JOBCTL_JOBS, the way a user's own module is."""

import asyncio
import fcntl
import json
import os
import signal
import time
from pathlib import Path

from jobctl import PermanentError, job, progress


@job("add")
def add(a: int, b: int = 0) -> int:
    return a + b


@job("record")
def record(path: str, text: str) -> str:
    """Append a line to a file: lets a test count how many times a job really ran."""
    with open(path, "a") as out:
        out.write(text + "\n")
    return text


@job("span")
def span(path: str, name: str, seconds: float = 0.0) -> str:
    """Append "start NAME", then `seconds` later "end NAME", to a file, holding a lock of NAME's
    own meanwhile: a run that finds the lock held (another run of the job is going on) first
    appends "overlap NAME". A run killed midway leaves a start without an end and no lock (the
    kernel releases it with the process)."""
    with open(f"{path}.{name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _append(path, f"overlap {name}")
        _append(path, f"start {name}")
        time.sleep(seconds)
        _append(path, f"end {name}")
    return name


def _append(path: str, line: str) -> None:
    with open(path, "a") as out:
        out.write(line + "\n")


@job("flaky")
def flaky(counter: str, failures: int) -> int:
    """Fail the first `failures` attempts, then succeed; the attempt count lives in a file."""
    attempts = Path(counter)
    seen = int(attempts.read_text()) + 1 if attempts.exists() else 1
    attempts.write_text(str(seen))
    if seen <= failures:
        raise RuntimeError(f"flaky failure {seen}")
    return seen


@job("always_fails")
def always_fails() -> None:
    raise ValueError("this job always fails")


@job("refuses")
def refuses() -> None:
    raise PermanentError("bad input, do not retry")


@job("slow")
def slow(marker: str, seconds: float) -> float:
    """Write the worker's pid to `marker` when it starts, then take `seconds`. The marker appears
    with the pid in it (written aside, then renamed): a test that sees it can read the pid."""
    aside = Path(f"{marker}.{os.getpid()}")
    aside.write_text(str(os.getpid()))
    aside.rename(marker)
    time.sleep(seconds)
    return seconds


@job("gated")
def gated(marker: str, gate: str, text: str = "") -> str:
    """Write `marker` when it starts, print `text`, then wait (up to a minute) for the file `gate`:
    a running job that a test ends when it is done looking at it."""
    Path(marker).write_text(str(os.getpid()))
    if text:
        print(text, flush=True)
    deadline = time.monotonic() + 60
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return text


@job("steps")
def steps(count: int, pause: float = 0.05) -> int:
    for step in range(1, count + 1):
        progress(100 * step / count, f"step {step} of {count}")
        time.sleep(pause)
    return count


@job("crash")
def crash(exit_code: int = 3) -> None:
    os._exit(exit_code)


@job("echo_kwargs")
def echo_kwargs(*args, **kwargs) -> str:
    return json.dumps({"args": args, "kwargs": kwargs}, sort_keys=True)


@job("whoami")
def whoami() -> int:
    return os.getpid()


@job("stubborn")
def stubborn(seconds: float) -> float:
    """Ignore the timeout signal, as code stuck in a C extension would."""
    import signal

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(seconds)
    return seconds


_hoard = []


@job("hoard")
def hoard(megabytes: int) -> int:
    """Keep `megabytes` of memory alive in the worker after the job ends."""
    _hoard.append(bytearray(megabytes * 1024 * 1024))
    return os.getpid()


@job("async_add")
async def async_add(a: int, b: int = 0, pause: float = 0.01) -> int:
    await asyncio.sleep(pause)
    return a + b


@job("overlap")
def overlap(log: str, seconds: float) -> int:
    """Append "start <t> <pid>" and "end <t> <pid>" lines: lets a test measure how many ran at once."""
    with open(log, "a") as out:
        out.write(f"start {time.time()} {os.getpid()}\n")
    time.sleep(seconds)
    with open(log, "a") as out:
        out.write(f"end {time.time()} {os.getpid()}\n")
    return os.getpid()


@job("async_overlap")
async def async_overlap(log: str, seconds: float) -> int:
    with open(log, "a") as out:
        out.write(f"start {time.time()} {os.getpid()}\n")
    await asyncio.sleep(seconds)
    with open(log, "a") as out:
        out.write(f"end {time.time()} {os.getpid()}\n")
    return os.getpid()


@job("ticking")
def ticking(log: str, seconds: float) -> None:
    """Run Python code for `seconds` (an interruption lands between ticks); log "started", and
    "finally" on the way out however it ends."""
    with open(log, "a") as out:
        out.write(f"started {os.getpid()}\n")
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        with open(log, "a") as out:
            out.write("finally\n")


@job("ticks")
def ticks(log: str, seconds: float) -> None:
    """Append "tick <unix time> <pid>" about every 10 ms for `seconds`: when its code ran."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _note(log, f"tick {time.time()} {os.getpid()}")
        time.sleep(0.01)


@job("async_ticks")
async def async_ticks(log: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _note(log, f"tick {time.time()} {os.getpid()}")
        await asyncio.sleep(0.01)


@job("async_waiting")
async def async_waiting(log: str, seconds: float) -> None:
    with open(log, "a") as out:
        out.write(f"started {os.getpid()}\n")
    try:
        await asyncio.sleep(seconds)
    finally:
        with open(log, "a") as out:
            out.write("finally\n")


@job("forks")
def forks(log: str) -> str:
    """Fork, and return in both processes, as a careless job would."""
    pid = os.fork()
    with open(log, "a") as out:
        out.write(f"{'child' if pid == 0 else 'parent'} {os.getpid()}\n")
    return "done"


@job("returns")
def returns(kind: str):
    if kind == "set":
        return {1, 2}
    nested: list = []
    for _ in range(100_000):
        nested = [nested]
    return nested


# --- job options (tests/test_job_options.py, test_limits.py) -----------------------------------


def _note(path: str, line: str) -> None:
    with open(path, "a") as out:
        out.write(line + "\n")


def _hook(kind: str):
    """A hook that notes `kind attempt outcome` in the file named by the job's last argument."""

    def hook(job, outcome) -> None:
        _note(job.args[-1], f"{kind} {job.attempt} {outcome!r} {job.id} {job.name} {job.queue} {job.enqueued_at}")

    return hook


@job("hooked", max_retries=2, on_success=_hook("success"), on_failure=_hook("failure"), on_dead=_hook("dead"))
def hooked(counter: str, failures: int, log: str) -> int:
    return flaky(counter, failures)


def _slow_hook(job, outcome) -> None:
    time.sleep(job.args[0])


@job("slow_hooked", on_success=_slow_hook)
def slow_hooked(hook_seconds: float) -> float:
    """Return at once; its on_success hook takes `hook_seconds`."""
    return hook_seconds


def _broken_hook(job, outcome) -> None:
    raise RuntimeError("the hook itself is broken")


@job("badly_hooked", on_success=_broken_hook, on_failure=_broken_hook, on_dead=_broken_hook, max_retries=0)
def badly_hooked(fail: bool) -> str:
    if fail:
        raise ValueError("the job failed")
    return "done"


@job("discarded", keep_dead=False, max_retries=1, on_dead=_hook("dead"))
def discarded(log: str) -> None:
    raise RuntimeError("discard me")


def _backoff_probe_delay(attempt: int, exception: BaseException) -> float:
    _note(str(Path("backoff.log").resolve()), f"{attempt} {type(exception).__name__}")
    return 0.1


@job("backoff_probe", max_retries=2, backoff=_backoff_probe_delay)
def backoff_probe() -> None:
    raise LookupError("always")


@job("slow_retry", max_retries=1, backoff="fixed", retry_delay="30s")
def slow_retry() -> None:
    raise RuntimeError("retry me in 30s")


@job("unique_default", unique=True)
def unique_default(key: str) -> str:
    return key


@job("unique_hour", unique="1h")
def unique_hour(key: str) -> str:
    return key


@job("type_error_inside", max_retries=1)
def type_error_inside() -> None:
    len(5)  # a TypeError raised by the job's own code: an ordinary failure


@job("limited_overlap", max_concurrency=2)
def limited_overlap(log: str, seconds: float) -> int:
    return overlap(log, seconds)


@job("rate_limited", rate_limit="5/s")
def rate_limited(n: int) -> int:
    return n


@job("limited_once_slow", max_concurrency=1)
def limited_once_slow(marker: str) -> str:
    """The first run writes its pid to `marker` and hangs; any later run returns at once."""
    if not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        time.sleep(120)
    return "done"


@job("freezes")
def freezes(marker: str) -> str:
    """The first run stops its whole worker process (SIGSTOP: its control thread too), so that a
    test sees what the worker holds at that moment; any later run returns at once."""
    if not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGSTOP)
    return "done"


@job("imported")
def imported(module: str) -> bool:
    """Whether the worker's process has imported `module`."""
    import sys

    return module in sys.modules


@job("rq_current_job")
def rq_current_job() -> str | None:
    """The id rq.get_current_job() gives, rq imported here, inside the job (nothing imported it before)."""
    from rq import get_current_job

    current = get_current_job()
    return current.id if current is not None else None


# --- elastic workers (tests/test_autoscale.py) ---------------------------------------------------


@job("nap")
def nap(log: str, text: str, seconds: float) -> str:
    """Note `start <text> <pid> <time>` in `log`, take `seconds`, then note `end <text>`: a test
    sees which worker runs what since when, and counts the runs that went to their end."""
    _note(log, f"start {text} {os.getpid()} {time.time()}")
    time.sleep(seconds)
    _note(log, f"end {text}")
    return text
