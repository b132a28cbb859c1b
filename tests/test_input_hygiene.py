"""Bad and hostile input, as an operator or a config file gives it: each refused with one line
naming what is wrong and where (exit 2, or 1 where an operation failed), nothing started or
half-written. Also the CLI's grammar: flags that would do nothing are refused, not ignored."""

from __future__ import annotations

import dataclasses
import json
import signal
from pathlib import Path

import pytest
import redis
from conftest import wait_for

from jobctl.store import keys


def error_of(result, code: int = 2) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0].removeprefix("jobctl: error: ")


# --- queue.yml and recurring.yml --------------------------------------------------------------------


def test_worker_count_is_bounded_and_nothing_starts(project, db):
    project.write("queue.yml", "default: {worker_count: 100000}\n")
    line = error_of(project.run("work", "--burst"))
    assert line == (
        "queue.yml: queue 'default': key 'worker_count': expected a whole number from 0 to 64, "
        "or a range like 2..10 with 1 <= min <= max <= 64 (for more jobs in flight per process, "
        "set `concurrency`), got 100000"
    )
    assert db.scard(keys.WORKERS) == 0


def test_duplicate_keys_are_refused_with_both_lines(project):
    project.write("queue.yml", "default: {worker_count: 1}\nanalytics: {}\ndefault: {worker_count: 9}\n")
    assert error_of(project.run("config")) == ("queue.yml: line 3, column 1: duplicate key 'default' (lines 1 and 3)")


def test_yaml_aliases_are_refused_and_files_capped(project):
    bomb = 'a: &a ["x", "x"]\nb: &b [*a, *a]\nc: &c [*b, *b]\n'
    project.write("recurring.yml", f"nightly:\n  job: add\n  args: [1]\n  schedule: every 1 days\n{bomb}")
    assert error_of(project.run("scheduler", "--list")) == (
        "recurring.yml: line 6, column 8: alias *a refused (write the value out; aliases can blow a file up)"
    )
    project.write("recurring.yml", "# padding\n" * 200_000)
    assert "more than a config file may hold (1048576 bytes)" in error_of(project.run("scheduler", "--list"))


def test_timeout_zero_is_refused_and_sub_second_durations_are_exact(project, db):
    project.write("queue.yml", "default: {timeout: 0}\n")
    assert error_of(project.run("enqueue", "add", "1")) == (
        "queue.yml: queue 'default': key 'timeout': expected a duration above 0 like 1500ms, 30s, 5m, 2h, got 0"
    )
    project.write("queue.yml", "default: {timeout: 1500ms, retry_delay: 250ms}\n")
    job_id = project.enqueue("add", "1")
    assert project.show(job_id)["timeout"] == 1.5
    config = json.loads(project.run("config", "--json").stdout)
    assert config["queues"][0]["settings"]["retry_delay"] == {
        "value": 0.25,
        "text": "250ms",
        "source": "file queue.yml: queue 'default'",
    }


def test_inf_and_nan_are_refused_when_loaded(project):
    project.write("queue.yml", "default: {retry_delay: .inf}\n")
    assert error_of(project.run("config")) == "queue.yml: line 1, column 24: '.inf' refused: expected a finite number"
    project.write("queue.yml", "default: {}\n")
    project.write("recurring.yml", "n:\n  job: add\n  args: [.nan]\n  schedule: every 1 days\n")
    assert "'.nan' refused" in error_of(project.run("scheduler", "--list"))


def test_schedule_overflow_is_refused(project):
    project.write("recurring.yml", "n:\n  job: add\n  args: [1]\n  schedule: every 99999999999999999999 days\n")
    assert error_of(project.run("scheduler", "--list")) == (
        "recurring.yml: entry 'n': key 'schedule': bad interval 'every 99999999999999999999 days': expected at most 100 years"
    )


# --- Redis ----------------------------------------------------------------------------------------


def test_out_of_memory_redis_refuses_enqueue_in_one_line(project, redis_server):
    server = redis_server("--maxmemory", "1mb", "--maxmemory-policy", "noeviction")
    client = redis.Redis.from_url(server.url)
    client.config_set("maxmemory", "1")  # full whatever it holds: the test does not depend on sizes
    env = {"REDIS_URL": server.url}
    result = project.run("enqueue", "add", "1", env=env)
    assert error_of(result, code=1) == "Redis is out of memory (maxmemory): nothing was enqueued"
    assert client.llen(keys.queue("default")) == 0 and not client.keys("rq:job:*")


def test_passwords_are_masked_in_every_url_form(project):
    urls = (
        "redis://s3cret@127.0.0.1:1/0",
        "redis://:s3cret@127.0.0.1:1",
        "redis://user:s3cret@127.0.0.1:1",
        "rediss://u:s3cret@127.0.0.1:1",
        "redis://127.0.0.1:1/0?password=s3cret",
        "redis+sentinel://:s3cret@127.0.0.1:1,127.0.0.1:2/svc/0?sentinel_password=s3cret",
    )
    # each form read in this process, and the last also by a real `jobctl` (a process of its own)
    for url, run in [*((url, project.run_here) for url in urls), (urls[-1], project.run)]:
        shown = run("config", "--json", env={"REDIS_URL": url})
        assert shown.returncode == 0, shown.stderr
        assert "s3cret" not in shown.stdout and "***" in json.loads(shown.stdout)["redis_url"]["value"]
        status = run("status", env={"REDIS_URL": url})
        assert status.stderr.startswith("jobctl: error: ") and "s3cret" not in status.stderr, status.stderr


# --- data is never Rich markup ---------------------------------------------------------------------


def test_markup_in_arguments_and_errors_is_printed_as_is(project):
    job_id = project.enqueue("echo_kwargs", "[red]x[/red]", "-k", "tag=[bold]")
    shown = project.run("show", job_id).stdout
    assert '"[red]x[/red]"' in shown and '"[bold]"' in shown
    assert "[bold]" in error_of(project.run("enqueue", "add", "-k", "[bold]"))


# --- requeue-dead and enqueue --from ---------------------------------------------------------------


def test_requeue_dead_of_a_job_that_is_not_dead(project):
    queued = project.enqueue("add", "1")
    assert error_of(project.run("requeue-dead", "--job-id", queued), code=1) == (
        f"requeue-dead: job {queued} is queued, not dead; nothing requeued"
    )
    assert error_of(project.run("requeue-dead", "--job-id", "unknown-job")) == (
        "--job-id: no job with id 'unknown-job'"
    )


def catches(pid: int, signum: int) -> bool:
    """Whether process `pid` has set a handler for `signum` (SigCgt in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def test_sigterm_during_enqueue_from_says_how_many_were_stored_and_how_to_resume(project, db):
    total = 5_000  # five batches
    lines = project.write("calls.jsonl", "".join(f'{{"args": [{n}]}}\n' for n in range(total)))
    # Redis holds writes until the signal is sent: it arrives while the first batch is on its
    # way, however fast the rest would have been stored
    db.client_pause(60_000, all=False)
    try:
        loading = project.start("enqueue", "add", "--from", lines.name)
        wait_for(
            lambda: catches(loading.pid, signal.SIGTERM) or loading.poll() is not None,
            timeout=60,
            message="enqueue --from ready to store (its SIGTERM handler set)",
        )
        loading.send_signal(signal.SIGTERM)
    finally:
        db.client_unpause()
    assert loading.wait(timeout=30) == 128 + signal.SIGTERM
    stored = db.llen(keys.layout_of(db).queue("default"))
    assert 0 < stored < total
    assert loading.stderr.read().strip() == (
        f"jobctl: SIGTERM: stored {stored} of {total} jobs from {lines.name}; "
        f"resume with: jobctl enqueue add --from {lines.name} --skip {stored}"
    )
    resumed = project.run("enqueue", "add", "--from", lines.name, "--skip", str(stored), timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert db.llen(keys.layout_of(db).queue("default")) == total


# --- one CLI grammar --------------------------------------------------------------------------------


def test_version_help_and_global_options_after_the_command(project):
    assert project.run("--version").stdout.strip().startswith("jobctl ")
    assert project.run("-h").stdout.startswith("Usage: jobctl")
    assert project.run("status", "-h").stdout.startswith("Usage: jobctl status")
    job_id = project.enqueue("add", "1")
    quiet_after = project.run("cancel", job_id, "--quiet")
    assert quiet_after.returncode == 0 and quiet_after.stdout.strip() == job_id
    assert project.run("config", "--json", "--config", "queue.yml").returncode == 0


def test_ineffective_or_conflicting_flags_are_refused_naming_both(project):
    refused = {
        ("status", "--live", "--json"): "--live and --json",
        ("status", "--interval", "2"): "--interval without --live",
        ("enqueue", "add", "1", "--allow-failure"): "--allow-failure without --depends-on",
        ("scheduler", "--json"): "--json without --list",
        ("enqueue", "add", "--skip", "3"): "--skip without --from",
    }
    for args, start in refused.items():
        assert error_of(project.run(*args)).startswith(start), args


def test_cancel_of_several_ids_handles_and_reports_each(project):
    queued = project.enqueue("add", "1")
    result = project.run("cancel", queued, "nope-nope", "--json")
    assert result.returncode == 2
    first, second = json.loads(result.stdout)
    assert (first["job_id"], first["canceled"]) == (queued, True)
    assert (second["job_id"], second["state"], second["error"]) == ("nope-nope", None, "no job with id 'nope-nope'")
    assert project.show(queued)["state"] == "canceled"


def test_config_shows_durations_as_written(project):
    project.write("queue.yml", "defaults: {timeout: 5m}\ndefault: {retry_delay: 1500ms}\n")
    table = project.run("config").stdout
    for written in (" 5m ", " 1500ms ", " 30d ", " off ", " 1h "):
        assert written in table, written


def test_the_scheduler_survives_an_out_of_memory_redis(project, redis_server):
    server = redis_server("--maxmemory-policy", "noeviction")
    client = redis.Redis.from_url(server.url)
    client.config_set("maxmemory", "1")  # every write refused: Redis is "full" however little it holds
    project.write("recurring.yml", "often:\n  job: add\n  args: [1]\n  schedule: every 1 seconds\n")
    scheduler = project.start("scheduler", env={"REDIS_URL": server.url})
    try:
        # OOM replies only: redis-py's connection handshake (CLIENT SETINFO) draws error replies too
        wait_for(
            lambda: client.info("errorstats").get("errorstat_OOM", {}).get("count", 0) >= 3,
            message="the scheduler's writes refused",
        )
        assert scheduler.poll() is None and not client.keys("rq:job:*")
        client.config_set("maxmemory", "0")
        wait_for(lambda: client.keys("rq:job:cron-often-*"), timeout=30, message="a run once memory is free")
    finally:
        scheduler.send_signal(signal.SIGTERM)
        assert scheduler.wait(timeout=15) == 0
    log = scheduler.stderr.read()
    assert log.count("Redis is out of memory (maxmemory)") == 1, log
    assert "Traceback" not in log


# --- deep nesting, non-finite numbers, unique calls however spelled ---------------------------------


def test_deeply_nested_config_is_one_line_naming_the_file(project):
    project.write("queue.yml", "default: " + "[" * 10_000 + "]" * 10_000 + "\n")  # 20 KB: under the size cap
    assert error_of(project.run("config")) == (
        "queue.yml: line 1, column 109: nested deeper than 100 levels of lists and objects"
    )
    project.write("queue.yml", "default: {}\n")
    project.write(
        "recurring.yml", "n:\n  job: echo_kwargs\n  args: " + "[" * 150 + "]" * 150 + "\n  schedule: every 1 days\n"
    )
    assert "recurring.yml: line 3, column 107: nested deeper than 100" in error_of(project.run("scheduler", "--list"))


def test_deeply_nested_arguments_are_refused_naming_the_argument(project, db):
    deep = "[" * 5000 + "]" * 5000
    assert error_of(project.run("enqueue", "echo_kwargs", "1", deep)) == (
        "argument 2: nested deeper than 100 levels of lists and objects"
    )
    assert error_of(project.run("enqueue", "echo_kwargs", "-k", f"x={deep}")) == (
        "-k/--kwarg x: nested deeper than 100 levels of lists and objects"
    )
    project.write("calls.jsonl", '{"args": [1]}\n{"args": [' + deep + "]}\n")
    assert error_of(project.run("enqueue", "echo_kwargs", "--from", "calls.jsonl")) == (
        "--from calls.jsonl: line 2: nested deeper than 100 levels of lists and objects"
    )
    assert "nested deeper than 100" in error_of(project.run("emit", "user.signup", deep))
    just_under = "[" * 100 + "]" * 100  # the limit itself is accepted
    assert project.run("enqueue", "echo_kwargs", just_under).returncode == 0
    assert db.llen(keys.layout_of(db).queue("default")) == 1


def test_producers_refuse_deep_and_non_finite_arguments(project, db):
    from jobctl.api.producer import enqueue, enqueue_many
    from jobctl.config.queues import load_queues
    from jobctl.errors import UsageError
    from jobctl.jobs import catalogue

    catalogue.load("sample_jobs")
    connection, config = db, load_queues(project.path / "queue.yml")
    deep: list = []
    for _ in range(150):  # under Python's recursion limit: json.dumps alone would take it
        deep = [deep]
    for args, kwargs, problem in (
        ([deep], {}, "job 'echo_kwargs': argument 1: must be JSON: nested deeper than 100 levels"),
        ([1, [float("nan")]], {}, "job 'echo_kwargs': argument 2: must be JSON: nan is not a JSON number"),
        ([], {"x": float("inf")}, "job 'echo_kwargs': keyword argument 'x': must be JSON: inf is not a JSON number"),
    ):
        with pytest.raises(UsageError) as refused:
            enqueue(connection, config, "echo_kwargs", args, kwargs)
        assert str(refused.value).startswith(problem)
        with pytest.raises(UsageError) as refused:
            enqueue_many(connection, config, "echo_kwargs", [(args, kwargs)])
        assert str(refused.value).startswith(problem)
    assert not list(connection.scan_iter("rq:job:*"))


def test_nan_infinity_and_huge_numbers_stay_strings(project):
    job_id = project.enqueue("echo_kwargs", "--", "NaN", "Infinity", "-Infinity", "1e999", "[1, NaN]", "2.5")
    assert project.show(job_id)["args"] == ["NaN", "Infinity", "-Infinity", "1e999", "[1, NaN]", 2.5]
    assert project.run("work", "--burst").returncode == 0
    shown = project.show(job_id)
    assert shown["state"] == "finished"
    assert json.loads(shown["result"])["args"] == ["NaN", "Infinity", "-Infinity", "1e999", "[1, NaN]", 2.5]
    project.write("calls.jsonl", '{"args": [1]}\n{"args": [NaN]}\n')
    assert error_of(project.run("enqueue", "echo_kwargs", "--from", "calls.jsonl")) == (
        "--from calls.jsonl: line 2: NaN is not a JSON number (JSON numbers are finite)"
    )
    assert "1e999 is out of range" in error_of(project.run("emit", "user.signup", '{"n": 1e999}'))


def test_unique_claims_the_call_however_it_is_spelled(project, db):
    first = project.enqueue("add", "5", "--unique")
    # the first spelling by a real `jobctl`; the others in this process where it enqueues as one does
    here = project.run_here if project.enqueues_alike_here("add", ("--unique",), None) else project.run
    spellings = (["5"], ["-k", "a=5"], ["5.0"], ["5", "0"], ["-k", "b=0", "-k", "a=5.0"])
    for number, spelling in enumerate(spellings):
        again = (here if number else project.run)("enqueue", "add", *spelling, "--unique")
        assert again.returncode == 1 and again.stderr.strip() == (
            f"jobctl: not enqueued: job {first} is already queued"
        ), spelling
    for other in (["6"], ["5", "1"], ["true"]):  # true is not 1: JSON types differ
        assert here("enqueue", "add", *other, "--unique").returncode == 0, other
    assert db.llen(keys.layout_of(db).queue("default")) == 4


def test_a_declared_jobs_defaults_are_read_from_its_source_for_the_claim():
    from jobctl.jobs import catalogue, signatures

    catalogue.load(None)
    # as declared, before its module is imported (an earlier test in this process may have run
    # it): the signature is then read from the module's source
    spec = dataclasses.replace(catalogue.get("recommendations"), func=None)
    spellings = [(["UC1"], {}), (["UC1", 5], {}), ([], {"channel_id": "UC1", "top_n": 5.0})]
    assert [signatures.bound_call(spec, args, kwargs) for args, kwargs in spellings] == [{"channel_id": "UC1"}] * 3
    assert signatures.bound_call(spec, ["UC1", 6], {}) == {"channel_id": "UC1", "top_n": 6}
