"""The job object is typed (ParamSpec and the return type): mypy, run as a user runs it on their
own code, accepts right calls and rejects a wrong argument by name."""

from __future__ import annotations

import subprocess
import sys

from conftest import TOOL_CACHES

JOBS = """\
from jobctl import Handle, job


@job("typed_add")
def add(a: int, b: int = 0) -> int:
    return a + b


@job("typed_fetch")
async def fetch(url: str) -> bytes:
    return url.encode()
"""

RIGHT = """\
def use() -> int:
    direct: int = add(1, 2)
    handle: Handle[int] = add.options(queue="bulk", timeout="5m").enqueue(1, b=2)
    later = add.enqueue_in("5m", 1)
    many = add.enqueue_many([(1,), (2, 3)])
    body: bytes = fetch.enqueue("u").result(timeout=1)
    return direct + handle.result() + later.result() + many[0].result() + len(body)


async def ause() -> bytes:
    handle = await fetch.aenqueue("u")
    return await handle.aresult(timeout=1) + await fetch("v")
"""

WRONG = """\
add.enqueue(1, b="two")
text: str = add.enqueue(1).result()
"""


def mypy(tmp_path, code: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "sample.py").write_text(JOBS + "\n\n" + code)
    return subprocess.run(
        # incremental, as a user runs it: jobctl's own modules are checked once, not at each run
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(TOOL_CACHES / "mypy"), "sample.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )


def test_right_calls_pass_mypy(tmp_path):
    checked = mypy(tmp_path, RIGHT)
    assert checked.returncode == 0, checked.stdout


def test_a_wrong_argument_fails_mypy_naming_it(tmp_path):
    checked = mypy(tmp_path, WRONG)
    assert checked.returncode == 1
    assert 'Argument "b" to "enqueue" of "JobFunction" has incompatible type "str"; expected "int"' in checked.stdout
    assert 'expression has type "int", variable has type "str"' in checked.stdout  # result() is the job's int
