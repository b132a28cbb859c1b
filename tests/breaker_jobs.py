"""Jobs behind queue.yml's breaker `store` (tests/test_breakers.py): what each run does is read
from a mode file, so a test turns the store they call down and up again."""

import os
import time
from pathlib import Path

import jobctl
from jobctl import job


def _mode(path: str) -> str:
    return Path(path).read_text().strip()


def _note(log: str, what: str) -> None:
    with open(log, "a") as out:
        out.write(f"{what} {time.time():.6f}\n")


@job("store_call", breaker="store", max_retries=0)
def store_call(mode: str, log: str, marker: str = "") -> str:
    """Logs its start and end; mode 'fail': the store refuses (ConnectionError); 'hang': writes
    its worker's pid to `marker` and never returns; else it succeeds."""
    _note(log, "start")
    current = _mode(mode)
    if current == "fail":
        raise ConnectionError("store unreachable")
    if current == "hang":
        Path(marker).write_text(str(os.getpid()))
        while True:
            time.sleep(1)
    _note(log, "end")
    return "stored"


@job("store_block", max_retries=0)
def store_block(mode: str, log: str) -> str:
    """Calls the store inside `with jobctl.breaker("store"):` (not attached to it)."""
    with jobctl.breaker("store"):
        _note(log, "start")
        if _mode(mode) == "fail":
            raise ConnectionError("store unreachable")
    return "stored"
