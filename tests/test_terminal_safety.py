"""Text a job controls (its arguments, error, progress message, output, a foreign record's job
name) reaches the operator's terminal with its control characters escaped, through every
command that prints it: no escape sequence of a job's retitles the window or clears the screen."""

from __future__ import annotations

import json
import signal
import time

import pytest
from conftest import state, wait_for
from rich.console import Console
from test_status_live import terminal as terminal

from jobctl.cli import jobviews, views
from jobctl.store import keys
from jobctl.store.jobdata import encode_payload
from jobctl.terminal import printable

# a window title (OSC 0, ended by BEL), a screen clear (CSI 2J), a bidi override
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\u202e"
ESCAPED = "\\x1b]0;pwned\\x07\\x1b[2J\\u202e"
AS_JSON = json.dumps(HOSTILE)[1:-1]  # arguments are shown as JSON, which escapes them its way

HOSTILE_JOBS = f"""
import time
from pathlib import Path

from jobctl import job, progress

HOSTILE = {HOSTILE!r}


@job("hostile", max_retries=0)
def hostile(arg, gate="", **extra):
    print(HOSTILE + "output")
    progress(50, HOSTILE + "progress")
    deadline = time.monotonic() + 60
    while gate and not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    raise RuntimeError(HOSTILE + "error")
"""


def test_printable_escapes_controls_and_keeps_line_breaks_where_asked():
    text = "a\x1b[31mb\x07\x9b\u202ec\u2066\x00\td\ne\r\nf\rg\ud800"
    assert printable(text) == "a\\x1b[31mb\\x07\\x9b\\u202ec\\u2066\\x00\td\\x0ae\\x0d\\x0af\\x0dg\\ud800"
    assert printable(text, lines=True) == "a\\x1b[31mb\\x07\\x9b\\u202ec\\u2066\\x00\td\ne\r\nf\\x0dg\\ud800"
    assert printable("naïve — 日本語 [bold]x[/bold]") == "naïve — 日本語 [bold]x[/bold]"


def rendered(renderable) -> str:
    """What a terminal would receive (colours included) from the CLI's consoles' settings."""
    console = Console(force_terminal=True, width=200, markup=False, emoji=False, color_system="truecolor")
    with console.capture() as capture:
        console.print(renderable)
    return capture.get()


def test_search_hits_and_markup_are_shown_as_data():
    hits = [{"score": 0.5, "document": HOSTILE + "doc", "chunk_index": 0, "text": "[red]x[/red]" + HOSTILE}]
    shown = rendered(views.search_table(HOSTILE, hits))
    assert "\x1b]0;pwned" not in shown and "\u202e" not in shown
    assert shown.count("\\x1b]0;pwned") == 3 and "[red]x[/red]" in shown


def test_demo_results_and_dependency_graphs_are_shown_as_data():
    from jobctl.api.jobdetail import JobDetail, Relative
    from jobctl.store.jobdata import JobView

    finished = JobView("j1", "add", "default", "finished", result={"note": HOSTILE + "result"})
    shown = rendered(jobviews.outcome_table([finished], 200))
    parent = Relative("p1", HOSTILE + "parent", "dead", reason=HOSTILE + "reason")
    child = Relative("c1", "add", "canceled", reason=f"parent p1 is dead {HOSTILE}", canceled_by="p1")
    shown += rendered(jobviews.dependency_tree(JobDetail(finished, [parent], [child])))
    assert "\x1b]0;pwned" not in shown and "\u202e" not in shown
    for part in ("result", "parent", "reason"):
        assert ESCAPED + part in shown, part


def no_raw_controls(result) -> str:
    """stdout and stderr of a command that printed hostile text: no ESC, BEL or bidi override."""
    both = result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for raw in ("\x1b", "\x07", "\u202e"):
        assert raw not in both, (raw, both)
    return both


def drawn_safely(screen: bytes) -> str:
    """A pseudo-terminal's bytes: Rich's own escape sequences, but none of the job's."""
    text = screen.decode(errors="replace")
    assert "\x1b]0;pwned" not in text and "\x1b[2J\u202e" not in text and "\u202e" not in text
    return text


@pytest.fixture
def hostile_project(project, db):
    project.write("hostile_jobs.py", HOSTILE_JOBS)
    project.env["JOBCTL_JOBS"] = "sample_jobs,hostile_jobs"
    # a record another tool wrote, dead, naming a job with an escape sequence in its name
    db.hset(
        keys.layout_of(db).job("foreign-1", "default"),
        mapping={
            "data": encode_payload(HOSTILE + "name", [HOSTILE], {}),
            "origin": "default",
            "status": "failed",
            "exc_info": HOSTILE + "foreign traceback",
        },
    )
    db.zadd(keys.layout_of(db).dead("default"), {"foreign-1": time.time() + 86400})  # the score: when it expires
    return project


def test_every_command_escapes_what_a_job_controls(hostile_project, terminal, tmp_path, db):
    """Each command's output as it prints it: in real processes (on a pseudo-terminal: enqueue
    --wait, status --live; on pipes: logs --follow, stats, the worker's log) and, for the reads
    that import no job module, in this process (run_here: the same entry point, a pipe's width)."""
    project = hostile_project
    gate = tmp_path / "gate"
    worker = project.start("work")
    waiting = terminal("enqueue", "hostile", HOSTILE + "arg", "-k", f"gate={gate}", "-k", f"{HOSTILE}key=1", "--wait")
    job_id = waiting.read_until(r"[0-9a-f-]{36}").group()
    wait_for(lambda: project.show(job_id).get("progress_message"), message="the job's progress")
    waiting.read_until(r"hostile \\x1b\]0;pwned\\x07\\x1b\[2J\\u202eprogress")  # the progress bar's label

    def status_with(part: str) -> str | None:
        shown = no_raw_controls(project.run_here("status", env={"COLUMNS": "250"}))
        return shown if part in shown else None

    # a worker's busy state (its job, its progress) comes with its flush, about once a second
    wait_for(lambda: status_with(ESCAPED + "progress"), message="the job's progress in status")
    live = terminal("status", "--live")
    live.read_until(r"\\x1b\]0;pwned\\x07\\x1b\[2J\\u202eprogress")
    live.type(b"q")
    assert live.exit_status() == 0
    drawn_safely(live.screen)

    gate.touch()
    assert waiting.exit_status() == 1  # the job died: its table is printed
    assert ESCAPED + "error" in drawn_safely(waiting.screen)
    wait_for(lambda: state(db, job_id) == "dead", message="the job dead")

    shown = no_raw_controls(project.run_here("show", job_id, "--all"))
    for part in ("error", "output"):
        assert ESCAPED + part in shown, part
    assert AS_JSON + "arg" in shown and AS_JSON + "key" in shown
    assert "RuntimeError: " + ESCAPED + "error" in shown  # in the traceback, which keeps its lines
    assert no_raw_controls(project.run_here("logs", job_id)).count(ESCAPED + "output") == 1
    assert ESCAPED + "output" in no_raw_controls(project.run("logs", job_id, "--follow"))
    as_json = project.run_here("show", job_id, "--json")
    assert "\x1b" not in as_json.stdout and json.loads(as_json.stdout)["args"] == [HOSTILE + "arg"]

    # recent failures come with the worker's tracking, flushed about once a second
    wait_for(lambda: status_with("RuntimeError: " + ESCAPED + "error"), message="the job's error in status")
    stats = no_raw_controls(project.run("stats", env={"COLUMNS": "250"}))
    assert ESCAPED + "error" in stats and AS_JSON + "arg" in stats

    dead = no_raw_controls(project.run_here("requeue-dead", "--queue", "default", "--dry-run"))
    assert f"would requeue foreign-1 {ESCAPED}name [default]" in dead
    foreign = no_raw_controls(project.run_here("show", "foreign-1"))
    assert ESCAPED + "name" in foreign and ESCAPED + "foreign traceback" in foreign

    worker.send_signal(signal.SIGTERM)
    logged = worker.communicate(timeout=30)[1]
    assert ESCAPED + "error" in logged and "\x1b" not in logged and "\u202e" not in logged
