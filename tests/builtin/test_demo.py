import json

from jobctl import PermanentError
from jobctl.cli.demo import demo_batch, demo_summary
from jobctl.jobs import catalogue

from .conftest import EXAMPLES

QUEUES = {
    "channel_sync": "default",
    "analytics": "analytics",
    "recommendations": "recommendations",
    "notifications": "notifications",
    "visualize": "default",
    "import": "default",
    "upload": "default",
}


def test_every_builtin_job_is_registered_on_its_queue():
    assert {name: catalogue.get(name).queue for name in QUEUES} == QUEUES


def test_the_batch_runs_all_seven_jobs_with_syncs_first():
    batch = demo_batch()
    names = [name for name, _, _ in batch]
    assert set(names) == set(QUEUES)
    first_analysis = names.index("analytics")
    assert all(name == "channel_sync" for name in names[:4]) and "channel_sync" not in names[4:first_analysis]


def test_the_batch_on_the_shipped_examples(workdir, store_backend):
    failures = []
    for name, args, kwargs in demo_batch():
        try:
            catalogue.resolve(name).func(*args, **kwargs)
        except PermanentError as exc:
            failures.append((name, str(exc)))

    assert failures == [
        (
            "channel_sync",
            (
                "unknown channel 'UCnoSuchChannelInExports0': there is no "
                f"{EXAMPLES}/channels/UCnoSuchChannelInExports0.json"
            ),
        ),
        ("import", f"import file {EXAMPLES}/imports/missing.csv does not exist"),
    ]
    summary = demo_summary()
    assert summary[0].startswith("data: ")
    # 4 synced + 28 imported channels; 4 x 42 days + 28 imported snapshots; 50 synced + 40 imported videos
    assert summary[1] == (
        "rows: 32 channels, 196 daily snapshots, 90 videos, 4 analytics reports, "
        "45 recommendations, 3 alerts, 5 documents, 13 chunks"
    )
    assert sum(line.startswith(f"chart: {workdir}/.jobctl/charts/") for line in summary) == 4
    assert any(
        line.endswith(f"missing.csv: failed, import file {EXAMPLES}/imports/missing.csv does not exist")
        for line in summary
    )


def test_batch_entries_survive_a_json_payload():
    batch = [[name, args, kwargs] for name, args, kwargs in demo_batch()]
    assert json.loads(json.dumps(batch)) == batch
