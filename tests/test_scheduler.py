"""`jobctl scheduler` as an operator runs it: real processes against the real Redis, one or two at a
time, killed, restarted, reloaded. Schedules' time logic (DST, time zones) is in test_schedule.py."""

import re
import shutil
import signal
import time
from datetime import UTC, datetime

import pytest
from conftest import QUEUE_YML, TESTS, stop, wait_for
from rq.job import Job
from rq.serializers import JSONSerializer

from jobctl.options.liveness import DEFAULT_LEASE_TTL
from jobctl.options.schedule import parse_schedule
from jobctl.runtime.scheduler import latest_due
from jobctl.store import keys
from jobctl.store.keys import SCHEDULER_HEARTBEAT as HEARTBEAT
from jobctl.store.keys import SCHEDULER_NEXT_RUNS as NEXT_RUNS


def every_second(name: str, path, catch_up: str = "latest", enabled: bool = True) -> str:
    return (
        f"{name}:\n  job: record\n  args: [{str(path)!r}, {name!r}]\n  schedule: every 1 second\n"
        f"  catch_up: {catch_up}\n  enabled: {str(enabled).lower()}\n"
    )


def dues(db, entry: str) -> list[int]:
    """The due times (unix seconds) of the entry's runs that were enqueued, from their job ids."""
    prefix = f"{keys.layout_of(db).job('', 'default')}cron-{entry}-"
    return sorted(
        int(key.decode()[len(prefix) :]) for key in db.scan_iter(f"{prefix}*") if b":" not in key[len(prefix) :]
    )


def test_two_schedulers_enqueue_each_due_time_once(project, db, tmp_path):
    ran = tmp_path / "ran.txt"
    project.write("recurring.yml", every_second("tick", ran))
    schedulers = [project.start("scheduler"), project.start("scheduler")]
    project.start("work")
    # each due time is a race: both schedulers' passes run just past the same second
    wait_for(lambda: len(dues(db, "tick")) >= 6, timeout=20, message="six due times")
    logs = [stop(s) for s in schedulers]
    seen = dues(db, "tick")
    assert seen == list(range(seen[0], seen[0] + len(seen))), f"a due time was skipped: {seen}"

    enqueued = re.findall(r"enqueued cron-tick-(\d+)", "".join(logs))
    assert sorted(map(int, enqueued)) == seen  # each due time enqueued once, by one of the two
    # the worker finishes each run at once, so a second enqueue of a finished run would run again
    wait_for(lambda: len(ran.read_text().split()) >= len(seen), message="every run to finish")
    time.sleep(0.3)
    assert len(ran.read_text().split()) == len(seen)


def test_killed_scheduler_restarted_runs_the_latest_missed_run_once(project, db, tmp_path):
    project.write("recurring.yml", every_second("tick", tmp_path / "ran.txt", catch_up="latest"))
    first = project.start("scheduler")
    wait_for(lambda: dues(db, "tick"), timeout=10, message="a first run")
    first.kill()  # SIGKILL, by its PID
    first.wait()
    handled = dues(db, "tick")[-1]
    time.sleep(4)  # several due times pass with no scheduler up

    second = project.start("scheduler")
    restarted = first_pass(db, after=handled + 1)
    wait_for(lambda: dues(db, "tick")[-1] > restarted, timeout=10, message="a run after the restart's first pass")
    log = stop(second)
    count, last_missed = missed_runs(log)
    assert count >= 2
    after = [due for due in dues(db, "tick") if due > handled]
    assert after[0] == last_missed  # the latest missed run, once; the ones before it skipped
    assert after == list(range(last_missed, last_missed + len(after)))  # then every run on time


def test_killed_scheduler_restarted_skips_missed_runs_with_catch_up_none(project, db, tmp_path):
    project.write("recurring.yml", every_second("tick", tmp_path / "ran.txt", catch_up="none"))
    first = project.start("scheduler")
    wait_for(lambda: dues(db, "tick"), timeout=10, message="a first run")
    first.kill()
    first.wait()
    handled = dues(db, "tick")[-1]
    time.sleep(4)

    second = project.start("scheduler")
    restarted = first_pass(db, after=handled + 1)
    wait_for(lambda: dues(db, "tick")[-1] > restarted, timeout=10, message="a run after the restart's first pass")
    log = stop(second)
    count, last_missed = missed_runs(log)
    assert count >= 2 and "catch_up none: skipped" in log
    after = [due for due in dues(db, "tick") if due > handled]
    assert after[0] == last_missed + 1  # none of the missed runs; every run on time since
    assert after == list(range(after[0], after[0] + len(after)))


def first_pass(db, after: float) -> float:
    """When a scheduler made its first pass after `after` (unix time): the heartbeat it wrote. A due
    time after it was run on time by that scheduler, not caught up at its start."""
    return wait_for(
        lambda: (beat := float(db.get(HEARTBEAT) or 0)) > after and beat, timeout=10, message="the first pass"
    )


def missed_runs(log: str) -> tuple[int, int]:
    """(how many, the latest one's unix time) from the scheduler's one line about missed runs."""
    lines = re.findall(r"(\d+) missed runs \(due .+? to (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)Z\)", log)
    assert len(lines) == 1, log
    count, latest = lines[0]
    return int(count), int(datetime.strptime(latest, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp())


def test_sighup_reloads_and_an_invalid_file_keeps_the_schedule(project, db, tmp_path):
    project.write("recurring.yml", every_second("first", tmp_path / "ran.txt"))
    scheduler = project.start("scheduler")
    wait_for(lambda: dues(db, "first"), timeout=10, message="the first entry's run")

    project.write("recurring.yml", every_second("second", tmp_path / "ran.txt"))
    scheduler.send_signal(signal.SIGHUP)
    wait_for(lambda: dues(db, "second"), timeout=5, message="the reloaded entry's run")
    reloaded_at = time.time()
    assert db.hkeys(NEXT_RUNS) == [b"second"]

    project.write("recurring.yml", "second:\n  job: record\n  schedule: every banana\n")
    scheduler.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    invalid_at = time.time()
    wait_for(lambda: dues(db, "second")[-1] > invalid_at + 1, timeout=5, message="runs after the invalid reload")
    log = stop(scheduler)
    assert max(dues(db, "first")) <= reloaded_at  # the removed entry stopped
    assert "SIGHUP: reloaded 1 entries" in log
    keeping = [line for line in log.splitlines() if "keeping the running schedule" in line]
    assert len(keeping) == 1 and "'every banana'" in keeping[0] and "Traceback" not in log


def test_next_runs_heartbeat_and_disabled_entries(project, db, tmp_path):
    project.write(
        "recurring.yml",
        every_second("live", tmp_path / "ran.txt")
        + every_second("paused", tmp_path / "ran.txt", enabled=False)
        + "nightly:\n  job: add\n  args: [1]\n  schedule: '30 2 * * *'\n  timezone: Europe/Paris\n",
    )
    scheduler = project.start("scheduler")
    wait_for(lambda: len(dues(db, "live")) >= 2, timeout=10, message="two runs")
    now = time.time()
    next_runs = {k.decode(): int(v) for k, v in db.hgetall(NEXT_RUNS).items()}
    assert set(next_runs) == {"live", "nightly"}
    assert now - 1 <= next_runs["live"] <= now + 1.5  # the next second (or this one, if the pass lags)
    nightly = parse_schedule("30 2 * * *", "Europe/Paris").next_after(datetime.fromtimestamp(now, UTC))
    assert next_runs["nightly"] == int(nightly.timestamp())
    assert abs(float(db.get(HEARTBEAT)) - now) < 1.5 and 0 < db.ttl(HEARTBEAT) <= DEFAULT_LEASE_TTL
    stop(scheduler)
    assert dues(db, "paused") == [] and dues(db, "nightly") == []


def test_redis_outage_logs_once_and_catches_up(project, tmp_path, redis_server):
    import redis

    server = redis_server("--appendonly", "yes")
    client = redis.Redis.from_url(server.url)
    project.write("recurring.yml", every_second("tick", tmp_path / "ran.txt"))
    scheduler = project.start("scheduler", env={"REDIS_URL": server.url})
    wait_for(lambda: dues(client, "tick"), timeout=10, message="a first run")
    # read at once: the scheduler's next pass is a second away, its first try after the outage
    # may come as soon as Redis is back
    handled = max(dues(client, "tick"))
    server.stop()
    time.sleep(3)  # a due time more than ON_TIME (2 s) old passes with Redis away: a missed run
    server.start()
    wait_for(lambda: dues(client, "tick")[-1] > time.time() - 1.5, timeout=10, message="runs after the outage")
    log = stop(scheduler)
    assert log.count("lost Redis at 127.0.0.1") == 1 and log.count("is back after") == 1, log
    assert "redis://" not in log
    _count, last_missed = missed_runs(log)
    after = [due for due in dues(client, "tick") if due > handled]
    assert after[0] == last_missed and after == list(range(after[0], after[0] + len(after)))


def test_scheduler_needs_its_file(project):
    missing = project.run("scheduler")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"jobctl: error: recurring.yml not found in {project.path} (run `jobctl init`, or pass --recurring / JOBCTL_RECURRING)"
    ]


def test_latest_due_looks_back_from_the_end():
    every_second = parse_schedule("every 1 second")
    start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 8, 12, 0, 0, 500000, tzinfo=UTC)
    assert latest_due(every_second, start, end) == datetime(2025, 1, 8, 12, tzinfo=UTC)
    nightly = parse_schedule("30 2 * * *", "Europe/Paris")
    assert latest_due(nightly, start, end) == datetime(2025, 1, 8, 1, 30, tzinfo=UTC)
    assert latest_due(nightly, datetime(2025, 1, 8, 2, tzinfo=UTC), end) is None


@pytest.mark.plain_only("RQ's API does not run on a Redis Cluster (docs/cluster.md)")
def test_recurring_runs_have_ids_rq_takes_on_both_engines(project, db):
    # a job module that uses RQ's API (get_current_job builds RQ's Job of the run's id), a name with
    # a '.' (which RQ's ids refuse), and an `engine: rq` queue, whose RQ workers fetch the run by id
    shutil.copy(TESTS / "rq_api_jobs.py", project.path / "rq_api_jobs.py")
    env = {"JOBCTL_JOBS": "sample_jobs,rq_api_jobs"}
    project.write("queue.yml", QUEUE_YML + "legacy: {engine: rq, worker_count: 1, serializer: json}\n")
    project.write(
        "recurring.yml",
        "meta.noted:\n  job: uses_meta\n  args: [k, v]\n  schedule: every 1 second\n"
        "legacy_add:\n  job: add\n  args: [40, 2]\n  queue: legacy\n  schedule: every 1 second\n",
    )
    project.start("scheduler", env=env)
    project.start("work", env=env)

    def finished(pattern: str) -> list[Job]:
        runs = [key.decode().removeprefix("rq:job:") for key in db.keys(pattern) if key.count(b":") == 2]
        jobs = [Job.fetch(run, connection=db, serializer=JSONSerializer) for run in runs]
        return [job for job in jobs if job.get_status() == "finished"]

    noted = wait_for(lambda: finished("rq:job:cron-meta_*"), message="a run that reads its current RQ job")[0]
    assert re.fullmatch(r"cron-meta_noted_[0-9a-f]{8}-\d+", noted.id)
    assert noted.return_value() == {"id": noted.id, "seen": {}}
    legacy_run = wait_for(lambda: finished("rq:job:cron-legacy_add-*"), message="a run on RQ's workers")[0]
    assert legacy_run.return_value() == 42
