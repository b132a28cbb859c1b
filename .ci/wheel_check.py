"""Checks jobctl as a user gets it: installed from the wheel into a fresh virtual environment,
outside the checkout (.ci/run builds the wheel, installs it, runs `jobctl init` and `jobctl demo`
in an empty directory, then this script there).

    python wheel_check.py EXPECTED_FILES

- every file of the package's source (EXPECTED_FILES: `git ls-files src/jobctl`) is installed,
  so a Lua script, template, static file, example file or init template left out of
  package-data fails here rather than on a user's machine;
- a job enqueued from Python (`hello.enqueue(...)`, `handle.result()`) is run by `jobctl work`
  and its result comes back;
- the dashboard (`jobctl web`) answers its login page, a page behind the token and a static file.

It uses the embedded Redis that `jobctl demo` started in this directory (.ci/run stops it).
"""

import importlib.metadata
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import jobctl

DEADLINE = 60.0  # seconds for the worker to run the job and for the dashboard to answer
T = TypeVar("T")


def fail(message: str) -> None:
    sys.exit(f"wheel check: {message}")


def wait_for(what: str, probe: Callable[[], T | None]) -> T:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.1)
    fail(f"{what}: nothing after {DEADLINE:.0f} s")
    raise AssertionError  # fail() exits


def check_files(expected_list: Path) -> None:
    package_dir = Path(jobctl.__file__).parent
    if not package_dir.is_relative_to(sys.prefix):
        fail(f"jobctl is imported from {package_dir}, not from this environment ({sys.prefix})")
    installed = {str(path) for path in importlib.metadata.files("jobctl") or []}
    expected = {line.removeprefix("src/") for line in expected_list.read_text().split()}
    missing = sorted(expected - installed)
    if missing:
        fail(f"{len(missing)} file(s) of src/jobctl missing from the wheel (package-data?): {', '.join(missing)}")
    print(f"wheel check: all {len(expected)} files of src/jobctl installed")


def check_job() -> None:
    """The three lines a user writes (docs/enqueue.md): the job object's enqueue and its handle."""
    sys.path.insert(0, os.getcwd())  # the project `jobctl init` made, as an app imports its own jobs
    import example_jobs

    handle = example_jobs.hello.enqueue("wheel")
    result = handle.result(timeout=DEADLINE)
    if result != "hello, wheel":
        fail(f"job {handle.id} finished with {result!r}")
    print(f"wheel check: job {handle.id} enqueued from Python finished with {result!r}")


def check_dashboard(port: int, token: str) -> None:
    base = f"http://127.0.0.1:{port}"

    def get(path: str) -> int | None:
        request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:  # not listening yet
            return None

    wait_for("jobctl web", lambda: get("/login"))
    for path in ("/login", "/", "/queues", "/static/app.css", "/static/app.js"):
        status = get(path)
        if status != 200:
            fail(f"jobctl web answered {path} with {status}")
    print("wheel check: the dashboard serves its pages and static files")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    check_files(Path(sys.argv[1]))
    jobctl_command = str(Path(sys.executable).with_name("jobctl"))
    port, token = free_port(), "wheel-check-token"
    environment = {**os.environ, "JOBCTL_JOBS": "example_jobs", "JOBCTL_WEB_TOKEN": token}
    processes = [
        subprocess.Popen([jobctl_command, "--quiet", "work"], env=environment),
        subprocess.Popen([jobctl_command, "--quiet", "web", "--port", str(port)], env=environment),
    ]
    try:
        check_job()
        check_dashboard(port, token)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=DEADLINE)


if __name__ == "__main__":
    main()
