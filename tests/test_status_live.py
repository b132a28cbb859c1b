"""`status --live` in a pseudo-terminal while a worker runs a job that reports progress: it
draws the queue, the running job and its progress, and leaves with exit status 0 on Ctrl-C or q."""

import contextlib
import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time

import pytest
from conftest import kill_quietly

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>78]")


class Terminal:
    """`python -m jobctl ARGS` with a pseudo-terminal (200x50) as its controlling terminal."""

    def __init__(self, project, *args: str):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the pty is its stdin/stdout/stderr and controlling tty
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
                os.chdir(project.path)
                os.execve(sys.executable, [sys.executable, "-m", "jobctl", *args], project.env)
            finally:
                os._exit(127)
        self.screen = b""

    def read_until(self, pattern: str, timeout: float = 10) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, ANSI.sub(b"", self.screen).decode(errors="replace"))
            if found:
                return found
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.screen += os.read(self.fd, 65536)
                except OSError:  # the child closed the terminal
                    break
        raise AssertionError(f"{pattern!r} not drawn within {timeout}s; screen: {ANSI.sub(b'', self.screen)[-2000:]!r}")

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def exit_status(self, timeout: float = 10) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            select.select([self.fd], [], [], 0.1)
            with contextlib.suppress(OSError):
                self.screen += os.read(self.fd, 65536)  # keep draining: the child never blocks writing
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.pid = 0
                return os.waitstatus_to_exitcode(status)
        raise AssertionError(f"status --live still running {timeout}s after being asked to stop")

    def close(self) -> None:
        if self.pid:
            kill_quietly(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


@pytest.fixture
def terminal(project):
    opened = []

    def open_terminal(*args: str) -> Terminal:
        opened.append(Terminal(project, *args))
        return opened[-1]

    yield open_terminal
    for t in opened:
        t.close()


def test_live_view_draws_the_running_job_and_its_progress(project, terminal):
    project.start("work", "--queue", "default")
    enqueued = project.run("enqueue", "steps", "40", "-k", "pause=0.1")
    assert enqueued.returncode == 0, enqueued.stderr
    job_id = enqueued.stdout.strip()

    live = terminal("status", "--live", "--interval", "0.2")
    live.read_until(r"Queues")
    live.read_until(r"\bdefault\b")
    live.read_until(rf"steps {job_id[:8]}")
    first = live.read_until(r"(\d+)% step (\d+) of 40")
    later = live.read_until(rf"(\d+)% step (?!{first.group(2)}\b)(\d+) of 40")  # redrawn as it moves on
    assert int(later.group(2)) > int(first.group(2))
    live.type(b"\x03")  # Ctrl-C
    assert live.exit_status() == 0


def test_sigint_from_elsewhere_leaves_the_live_view(project, terminal):
    live = terminal("status", "--live", "--interval", "0.2")
    live.read_until(r"q to quit")
    os.kill(live.pid, signal.SIGINT)
    assert live.exit_status() == 0
    assert live.screen.rstrip().endswith(b"\x1b[?1049l")


def test_q_leaves_the_live_view(project, terminal):
    live = terminal("status", "--live", "--interval", "0.2")
    live.read_until(r"q to quit")
    live.type(b"q")
    assert live.exit_status() == 0
    assert live.screen.rstrip().endswith(b"\x1b[?1049l")  # back from the alternate screen, nothing after
