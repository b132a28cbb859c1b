"""Delayed jobs (`enqueue --in` / `--at`) with nothing running but `jobctl work`: they start at
their time, not before, and late by less than a second given a free worker. The lateness is
printed (run with -s to see it); the bound asserted is deliberately generous."""

import time
from datetime import datetime, timezone

from conftest import wait_for

from jobctl import api

LATENESS_BOUND = 1.5  # seconds; the supervisor promotes due jobs every 0.2 s


def test_delayed_jobs_start_on_time(project, db):
    project.start("work")
    requested = time.time()
    delayed = project.enqueue("add", "1", "--in", "3s")
    at = datetime.fromtimestamp(int(time.time()) + 4, timezone.utc)
    timed = project.enqueue("add", "2", "--at", at.isoformat())
    waiting = api.jobs(db, [delayed, timed])
    assert [view.state for view in waiting] == ["scheduled", "scheduled"]
    run_at = waiting[0].scheduled_for  # --in counts from the enqueue command's own clock
    assert requested + 3 <= run_at < requested + 5 and waiting[1].scheduled_for == at.timestamp()

    wait_for(lambda: all(view.state == "finished" for view in api.jobs(db, [delayed, timed])), message="both jobs")
    delayed_view, timed_view = api.jobs(db, [delayed, timed])
    delayed_late = delayed_view.started_at - run_at
    timed_late = timed_view.started_at - at.timestamp()
    print(f"\nlateness: --in {delayed_late:.3f}s, --at {timed_late:.3f}s")
    assert 0 <= delayed_late < LATENESS_BOUND
    assert 0 <= timed_late < LATENESS_BOUND
