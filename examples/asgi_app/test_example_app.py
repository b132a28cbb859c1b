"""The example app's own tests, with jobctl's pytest plugin: jobctl_client (a private Redis, the
default client during the test) and jobctl_worker (runs the jobs in the test's process)."""

import pytest
from example_app import app
from example_jobs import word_count
from starlette.testclient import TestClient


def test_post_enqueues_and_get_returns_the_result(jobctl_client, jobctl_worker):
    web = TestClient(app)
    posted = web.post("/jobs", json={"text": "to be or not to be"})
    assert posted.status_code == 202
    job_id = posted.json()["id"]

    waiting = web.get(f"/jobs/{job_id}?timeout=0.1")
    assert (waiting.status_code, waiting.json()) == (202, {"state": "queued"})

    assert jobctl_worker.drain() == 1
    done = web.get(f"/jobs/{job_id}?timeout=5")
    assert done.json() == {"state": "finished", "result": {"words": 6, "top": ["be", "to", "not"]}}


def test_bad_requests(jobctl_client):
    web = TestClient(app)
    assert web.post("/jobs", json={"words": 1}).status_code == 400
    assert web.get("/jobs/00000000-0000-0000-0000-000000000000").status_code == 404


@pytest.mark.jobctl_fakeredis
def test_the_job_on_fakeredis(jobctl_client, jobctl_worker):
    handle = word_count.enqueue("a b a")
    assert jobctl_worker.drain() == 1
    assert handle.result() == {"words": 3, "top": ["a", "b"]}
