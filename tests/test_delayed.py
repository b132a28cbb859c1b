"""Delayed jobs (`enqueue --in` / `--at`) with nothing running but `jobctl work`: they start at
their time, never before. Their lateness is printed (run with -s to see it); the supervisor
promotes due jobs every 0.2 s, so it is well under a second on an idle machine, and the bound
asserted only catches promotion that does not happen (a loaded machine delays every process)."""

import time
from datetime import UTC, datetime

from conftest import wait_for

from jobctl.api import records

LATENESS_BOUND = 15  # seconds: not a measure of punctuality, a check that promotion happens at all


def test_delayed_jobs_start_on_time(project, db):
    requested = time.time()
    delayed = project.enqueue("add", "1", "--in", "2s")
    enqueued = time.time()
    at = datetime.fromtimestamp(int(time.time()) + 3, UTC)
    timed = project.enqueue("add", "2", "--at", at.isoformat())
    waiting = records.jobs(db, [delayed, timed])  # no worker yet: both wait, however slow this machine is
    assert [view.state for view in waiting] == ["scheduled", "scheduled"]
    run_at = waiting[0].scheduled_for  # --in counts from the enqueue command's own clock
    assert requested + 2 <= run_at <= enqueued + 2 and waiting[1].scheduled_for == at.timestamp()
    project.start("work")

    wait_for(lambda: all(view.state == "finished" for view in records.jobs(db, [delayed, timed])), message="both jobs")
    delayed_view, timed_view = records.jobs(db, [delayed, timed])
    delayed_late = delayed_view.started_at - run_at
    timed_late = timed_view.started_at - at.timestamp()
    print(f"\nlateness: --in {delayed_late:.3f}s, --at {timed_late:.3f}s")
    assert 0 <= delayed_late < LATENESS_BOUND
    assert 0 <= timed_late < LATENESS_BOUND
