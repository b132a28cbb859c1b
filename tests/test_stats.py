"""`jobctl stats`: what job tracking recorded, checked against what was run."""

import json
import math

from jobctl.api.reads import run_time_percentile


def stats(project, *args) -> dict:
    result = project.run("stats", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_stats_count_what_ran(project, in_process):
    added = [project.enqueue("add", "1", "-k", f"b={n}") for n in range(3)]
    failing = project.enqueue("always_fails")  # default: max_retries 2 -> 3 attempts, then dead
    project.enqueue("steps", "2", "-k", "pause=0.06")
    project.enqueue("add", "7", "--queue", "analytics")
    assert in_process().drain(wait=60) == 8  # the worker code of `jobctl work`, in this process

    everything = stats(project)
    jobs = {j["name"]: j for j in everything["jobs"]}
    assert set(jobs) == {"add", "always_fails", "steps"}  # job types that never ran are left out
    add = jobs["add"]
    assert (add["runs"], add["successes"], add["failures"], add["error_rate"]) == (4, 4, 0, 0.0)
    fails = jobs["always_fails"]
    assert (fails["runs"], fails["failures"], fails["retries"], fails["dead"], fails["error_rate"]) == (3, 3, 2, 1, 1.0)
    assert fails["last_error"] == "ValueError: this job always fails"
    assert [(r["id"], r["attempt"], r["outcome"]) for r in fails["recent"]] == [
        (failing, 3, "dead"),
        (failing, 2, "retried"),
        (failing, 1, "retried"),
    ]
    steps = jobs["steps"]
    assert steps["max_run_seconds"] >= 0.12
    # one run in the (0.1, 0.25] bucket: the percentiles cannot exceed the longest run
    assert 0.1 <= steps["p50_run_seconds"] <= steps["p95_run_seconds"] == steps["max_run_seconds"]
    queues = {q["name"]: q for q in everything["queues"]}
    assert (queues["default"]["runs"], queues["default"]["failures"], queues["default"]["dead"]) == (7, 3, 1)
    assert (queues["analytics"]["runs"], queues["analytics"]["successes"]) == (1, 1)

    only_add = stats(project, "--job", "add", "--recent", "4")
    assert only_add["queues"] == [] and [j["name"] for j in only_add["jobs"]] == ["add"]
    recent = only_add["jobs"][0]["recent"]
    assert all(r["outcome"] == "finished" for r in recent)
    # the order the worker takes the two queues' jobs in is not the point: only the set is checked
    assert sorted(((r["queue"], r["args"], r["kwargs"]) for r in recent), key=repr) == [
        ("analytics", [7], {}),
        ("default", [1], {"b": 0}),
        ("default", [1], {"b": 1}),
        ("default", [1], {"b": 2}),
    ]
    assert {r["id"] for r in recent if r["queue"] == "default"} == set(added)
    assert len(stats(project, "--job", "add", "--recent", "2")["jobs"][0]["recent"]) == 2

    on_analytics = stats(project, "--queue", "analytics")
    assert [q["name"] for q in on_analytics["queues"]] == ["analytics"]
    assert [(j["name"], [r["args"] for r in j["recent"]]) for j in on_analytics["jobs"]] == [("add", [[7]])]

    table = project.run("stats", "--job", "always_fails")
    assert table.returncode == 0, table.stderr
    assert "always_fails" in table.stdout and "100.0%" in table.stdout and "Recent executions" in table.stdout


def test_stats_bad_names_are_one_line_errors(project):
    unknown_job = project.run("stats", "--job", "nothing_like_it")
    assert unknown_job.returncode == 2
    assert unknown_job.stderr.strip() == (
        "jobctl: error: --job 'nothing_like_it': no executions recorded for it and no job is registered by that name"
    )
    unknown_queue = project.run("stats", "--queue", "nowhere")
    assert unknown_queue.returncode == 2 and "--queue: queue 'nowhere' is not configured" in unknown_queue.stderr
    assert "Traceback" not in unknown_queue.stderr + unknown_job.stderr


def test_percentiles_interpolate_inside_the_bucket():
    histogram = {0.1: 10, 0.25: 10}  # non-cumulative: 10 runs in (0.05, 0.1], 10 in (0.1, 0.25]
    assert run_time_percentile(histogram, 0.5, max_seconds=0.2) == 0.1
    assert math.isclose(run_time_percentile(histogram, 0.25, max_seconds=0.2), 0.075)
    assert run_time_percentile(histogram, 0.95, max_seconds=0.2) == 0.2  # 0.235 interpolated, capped at the max
    assert math.isclose(run_time_percentile({math.inf: 2}, 0.5, max_seconds=5000), 4300)  # open bucket ends at the max
    assert run_time_percentile({}, 0.5, max_seconds=None) is None
