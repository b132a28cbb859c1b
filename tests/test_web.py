"""`jobctl web` over HTTP against a real Redis: the login wall, sessions, CSRF, the Host check and
security headers, each action's effect in Redis, the pages, and /api/* equal to the CLI's --json
output."""

import asyncio
import json
import random
import string
import subprocess
import sys
import time

import httpx
import pytest
import sample_jobs  # noqa: F401  (registers the sample jobs in this process, for enqueue)
from conftest import free_port, wait_for
from starlette.testclient import TestClient

from jobctl import logs, testing
from jobctl.api import jobstats, records
from jobctl.api import reads as api
from jobctl.api.client import Client
from jobctl.api.producer import enqueue
from jobctl.config.settings import Settings
from jobctl.store import keys
from jobctl.store.jobdata import encode_payload
from jobctl.web.app import create_app
from jobctl.web.auth import COOKIE, FIRST_DELAY, MAX_DELAY, SESSION_SECONDS, Auth
from jobctl.web.board import Dashboard

TOKEN = "test-token-0123456789"
PAGES = [
    "/",
    "/queues",
    "/jobs?state=queued",
    "/jobs?state=scheduled",
    "/jobs?state=deferred",
    "/jobs?state=dead",
    "/jobs?state=finished",
    "/recurring",
    "/workers",
    "/stats",
]


@pytest.fixture
def settings(project, redis_url, monkeypatch):
    monkeypatch.chdir(project.path)
    return Settings(
        redis_url=redis_url,
        config_path=str(project.path / "queue.yml"),
        recurring_path=str(project.path / "recurring.yml"),
        job_modules="sample_jobs",
    )


def client_for(settings: Settings, read_only: bool = False, token: str = TOKEN, **options) -> TestClient:
    app = create_app(Dashboard(settings, Auth(token), read_only=read_only, **options))
    return TestClient(app, base_url="http://localhost:9181", follow_redirects=False)


@pytest.fixture
def anonymous(settings):
    with client_for(settings) as client:
        yield client


def log_in(client: TestClient) -> str:
    """Log in through the login form; returns the page's CSRF token."""
    answer = client.post("/login", data={"token": TOKEN, "next": "/queues"})
    assert answer.status_code == 303 and answer.headers["location"] == "/queues"
    page = client.get("/queues")
    assert page.status_code == 200
    return page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]


@pytest.fixture
def browser(settings):
    """A logged-in browser session: (client, csrf token)."""
    with client_for(settings) as client:
        yield client, log_in(client)


BEARER = {"Authorization": f"Bearer {TOKEN}"}
WRONG = {"Authorization": "Bearer not-the-token"}


def dead_jobs(project, db, *names: str) -> list[str]:
    """Jobs that really died in a worker (PermanentError or retries exhausted): the worker's code,
    run in this process (a `jobctl work --burst` process per test cost about a second)."""
    ids = [enqueue(db, load(project), name).id for name in names]
    client = Client(project.env["REDIS_URL"], project.path / "queue.yml")
    try:
        testing.Worker(["default"], client=client).drain(wait=60)
    finally:
        client.close()
    assert all(records.job(db, i).state == "dead" for i in ids)
    return ids


def load(project):
    from jobctl.config.queues import load_queues

    return load_queues(project.path / "queue.yml")


# --- the login wall ----------------------------------------------------------------------------


def test_without_a_token_pages_go_to_the_login_and_the_api_answers_401(anonymous, db):
    page = anonymous.get("/jobs?state=dead")
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fjobs%3Fstate%3Ddead"
    assert anonymous.get("/api/status").status_code == 401
    assert anonymous.post("/api/queues/default/pause").status_code == 401
    assert not db.sismember(keys.PAUSED, "default")
    login = anonymous.get("/login")
    assert login.status_code == 200 and 'type="password"' in login.text
    assert anonymous.get("/static/app.css").status_code == 200  # assets need no login


def test_bearer_token_reads_and_acts_without_csrf(anonymous, db):
    assert anonymous.get("/api/status", headers=BEARER).status_code == 200
    answer = anonymous.post("/api/queues/default/pause", headers=BEARER)
    assert answer.status_code == 200 and answer.json()["paused"] is True
    assert db.sismember(keys.PAUSED, "default")
    assert anonymous.post("/api/queues/default/resume", headers=BEARER).status_code == 200
    assert not db.sismember(keys.PAUSED, "default")


def test_a_wrong_token_is_refused_and_each_further_try_waits_longer(anonymous):
    # the n-th wrong try from one address is answered FIRST_DELAY * 2**(n-1) after it was sent:
    # bounds measured from before the first try hold however slow the machine
    before = time.monotonic()
    assert anonymous.get("/api/status", headers=WRONG).status_code == 401
    assert time.monotonic() - before >= FIRST_DELAY
    assert anonymous.get("/api/status", headers=WRONG).status_code == 401
    assert time.monotonic() - before >= FIRST_DELAY * (1 + 2)
    form = anonymous.post("/login", data={"token": "guess", "next": "/"})
    assert form.status_code == 401 and "Wrong token" in form.text and COOKIE not in form.headers.get("set-cookie", "")
    assert time.monotonic() - before >= FIRST_DELAY * (1 + 2 + 4)
    assert anonymous.get("/api/status", headers=BEARER).status_code == 200


def test_wrong_tries_in_parallel_from_one_address_do_not_lock_the_right_token_out(settings, caplog):
    """Behind a proxy every client has its address: wrong tries sent at once must not add up to a
    wait for the operator, whose right token is checked first and never held back."""
    app = create_app(Dashboard(settings, Auth(TOKEN)))
    tries = 4  # answered after 0.5, 1, 2 and 4 s: 7.5 s if their delays added up
    logs.get().addHandler(caplog.handler)  # each wrong try is logged when counted, before its delay

    def counted() -> int:  # each says how many from there so far (with propagation, twice here)
        return len({record.getMessage() for record in caplog.records if "wrong token from" in record.getMessage()})

    async def attempt() -> tuple[list[int], int, int]:
        transport = httpx.ASGITransport(app=app)  # every request from 127.0.0.1
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            wrong = [asyncio.create_task(client.get("/api/status", headers=WRONG)) for _ in range(tries)]
            deadline = time.monotonic() + 15
            while counted() < tries and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert counted() == tries, caplog.text
            # each wrong try waited at most MAX_DELAY; the right one does not wait for them all
            right = await asyncio.wait_for(client.get("/api/status", headers=BEARER), MAX_DELAY)
            still_waiting = sum(not task.done() for task in wrong)
            answers = await asyncio.gather(*wrong)
        return [answer.status_code for answer in answers], right.status_code, still_waiting

    try:
        codes, right, still_waiting = asyncio.run(attempt())
    finally:
        logs.get().removeHandler(caplog.handler)
    assert (codes, right) == ([401] * tries, 200)
    assert still_waiting, "the right token was answered only after the wrong tries sent before it"


def test_login_sets_an_http_only_same_site_strict_session_cookie(anonymous):
    answer = anonymous.post("/login", data={"token": TOKEN, "next": "//evil.example/"})
    assert answer.status_code == 303 and answer.headers["location"] == "/"  # no open redirect
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert anonymous.get("/").status_code == 200
    value = anonymous.cookies[COOKIE]
    anonymous.cookies.set(COOKIE, value[:-1] + ("A" if value[-1] != "A" else "B"))  # a session never opened
    assert anonymous.get("/").status_code == 303
    assert anonymous.get("/api/status").status_code == 401


def test_logout_closes_the_session_for_every_copy_of_its_cookie(browser, settings, db):
    client, csrf = browser
    [session_key] = db.scan_iter(keys.web_session("*"))
    assert 0 < db.ttl(session_key) <= SESSION_SECONDS
    copied = client.cookies[COOKIE]
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    assert client.get("/").status_code == 303
    assert not db.exists(session_key)
    with client_for(settings) as thief:
        thief.cookies.set(COOKIE, copied)
        assert thief.get("/").status_code == 303
        assert thief.get("/api/status").status_code == 401
        assert thief.post("/api/queues/default/pause", data={"csrf": csrf}).status_code == 401
    assert not db.sismember(keys.PAUSED, "default")


def test_logout_needs_the_csrf_token(browser):
    client, csrf = browser
    assert client.post("/logout").status_code == 403
    assert client.post("/logout", data={"csrf": "forged"}).status_code == 403
    assert client.get("/").status_code == 200  # still logged in
    assert client.post("/logout", headers={"X-CSRF-Token": csrf}).status_code == 303
    assert client.get("/").status_code == 303


def test_a_session_outlives_a_restart_with_the_same_token_but_not_a_new_token(browser, settings):
    client, _ = browser
    cookie = client.cookies[COOKIE]
    for token, status in ((TOKEN, 200), (TOKEN + "-changed", 303)):
        with client_for(settings, token=token) as restarted:
            restarted.cookies.set(COOKIE, cookie)
            assert restarted.get("/").status_code == status


def test_a_session_check_while_redis_is_down_answers_503(project, redis_server, monkeypatch):
    server = redis_server()
    monkeypatch.chdir(project.path)
    settings = Settings(redis_url=server.url, config_path=str(project.path / "queue.yml"), job_modules="sample_jobs")
    with client_for(settings) as client:
        log_in(client)
        server.stop()
        page, status = client.get("/"), client.get("/api/status")
    assert (page.status_code, status.status_code) == (503, 503)
    assert "Redis failed" in status.json()["error"]


# --- the Host check and the headers of every answer ----------------------------------------------


@pytest.mark.parametrize(
    ("host", "allowed", "status"),
    [
        ("localhost:9181", (), 200),
        ("127.0.0.1:9181", (), 200),
        ("[::1]:9181", (), 200),
        ("192.0.2.8", (), 200),  # an address cannot be rebound to another site
        ("evil.example", (), 400),  # a page of evil.example whose name now points at 127.0.0.1
        ("localhost.evil.example:9181", (), 400),
        ("dash.example.com", ("dash.example.com",), 200),
        ("a.jobs.example", ("*.jobs.example",), 200),
        ("jobs.example", ("*.jobs.example",), 400),
        ("anything.example", ("*",), 200),
    ],
)
def test_a_host_header_naming_another_site_is_refused(settings, host, allowed, status):
    with client_for(settings, allowed_hosts=allowed) as client:
        login = client.get("/login", headers={"Host": host})
        assert login.status_code == status, login.text
        assert client.get("/api/status", headers={**BEARER, "Host": host}).status_code == status
        if status == 400:
            assert "Invalid host header" in login.text


def test_every_answer_carries_the_security_headers(browser, settings):
    client, _ = browser
    with client_for(settings) as anonymous:
        answers = {
            "login page": anonymous.get("/login"),
            "redirect to the login": anonymous.get("/queues"),
            "401": anonymous.get("/api/status"),
            "refused Host": anonymous.get("/login", headers={"Host": "evil.example"}),
            "static file": anonymous.get("/static/app.css"),
        }
    answers |= {
        "page": client.get("/queues"),
        "JSON": client.get("/api/status"),
        "404 page": client.get("/jobs/no-such-job"),
        "action": client.post("/api/queues/default/pause", data={"next": "/queues"}),  # 403: no CSRF token
    }
    for what, answer in answers.items():
        policy = answer.headers.get("content-security-policy", "")
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, what
        assert "unsafe" not in policy, what
        assert answer.headers.get("x-content-type-options") == "nosniff", what
        assert answer.headers.get("referrer-policy") == "no-referrer", what
        assert answer.headers.get("x-frame-options") == "DENY", what
        cache = answer.headers.get("cache-control", "")
        assert (cache == "no-store") == (what != "static file"), (what, cache)


# --- CSRF and read-only --------------------------------------------------------------------------


def test_a_session_post_without_the_csrf_token_is_refused(browser, db):
    client, csrf = browser
    assert client.post("/api/queues/default/pause", data={"next": "/queues"}).status_code == 403
    assert client.post("/api/queues/default/pause", data={"csrf": "forged", "next": "/queues"}).status_code == 403
    assert not db.sismember(keys.PAUSED, "default")
    answer = client.post("/api/queues/default/pause", data={"csrf": csrf, "next": "/queues"})
    assert answer.status_code == 303 and db.sismember(keys.PAUSED, "default")
    assert "paused default" in client.get("/queues").text  # the one-line message on the page it came back to
    # JavaScript sends the header instead, and gets JSON
    answer = client.post("/api/queues/default/resume", headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 200 and answer.json()["paused"] is False
    assert not db.sismember(keys.PAUSED, "default")


def test_read_only_hides_and_refuses_actions(settings, project, db):
    [job_id] = dead_jobs(project, db, "refuses")
    with client_for(settings, read_only=True) as client:
        csrf = log_in(client)
        page = client.get(f"/jobs/{job_id}")
        assert "Read-only" in page.text and "/requeue" not in page.text
        assert "Requeue" not in client.get("/jobs?state=dead").text
        assert client.post(f"/api/jobs/{job_id}/requeue", data={"csrf": csrf}).status_code == 403
        assert client.post(f"/api/jobs/{job_id}/requeue", headers=BEARER).status_code == 403
    assert records.job(db, job_id).state == "dead"


# --- actions: their effect in Redis --------------------------------------------------------------


def test_requeue_a_dead_job_puts_it_back_on_its_queue(browser, project, db):
    client, csrf = browser
    [job_id] = dead_jobs(project, db, "refuses")
    answer = client.post(f"/api/jobs/{job_id}/requeue", data={"csrf": csrf, "next": "/jobs?state=dead"})
    assert answer.status_code == 303
    assert records.job(db, job_id).state == "queued"
    assert job_id.encode() in db.lrange(keys.layout_of(db).queue("default"), 0, -1)
    assert db.zscore(keys.layout_of(db).dead("default"), job_id) is None
    # the API answers 409 for a job that is not dead
    assert client.post(f"/api/jobs/{job_id}/requeue", headers=BEARER).status_code == 409


def test_cancel_and_enqueue_now_of_scheduled_jobs(anonymous, project, db):
    config = load(project)
    later, sooner = (enqueue(db, config, "add", [n], run_at=time.time() + 3600).id for n in (1, 2))
    answer = anonymous.post(f"/api/jobs/{later}/cancel", headers=BEARER)
    assert answer.status_code == 200 and answer.json()["canceled"] is True
    assert (
        records.job(db, later).state == "canceled"
        and db.zscore(keys.layout_of(db).canceled("default"), later) is not None
    )
    assert anonymous.post(f"/api/jobs/{sooner}/enqueue-now", headers=BEARER).status_code == 200
    assert records.job(db, sooner).state == "queued" and db.lrange(keys.layout_of(db).queue("default"), 0, -1) == [
        sooner.encode()
    ]
    assert db.zscore(keys.layout_of(db).scheduled("default"), sooner) is None


def test_cancel_stops_a_running_job(anonymous, project, db, tmp_path):
    log = tmp_path / "ticks"
    job_id = project.enqueue("ticking", str(log), "60")
    project.start("work", "--queue", "default")
    wait_for(log.exists, message="the job to start")
    answer = anonymous.post(f"/api/jobs/{job_id}/cancel", headers=BEARER)
    assert answer.status_code == 200 and answer.json()["canceled"] is True, answer.text
    assert answer.json()["message"] == f"canceled {job_id} (stopped while running)"
    assert (records.job(db, job_id).state, records.job(db, job_id).reason) == ("canceled", "canceled while running")
    assert anonymous.post(f"/api/jobs/{job_id}/cancel", headers=BEARER).status_code == 409  # already ended


def test_delete_a_job_removes_its_record_and_registry_entry(anonymous, project, db):
    [dead] = dead_jobs(project, db, "refuses")
    queued = enqueue(db, load(project), "add", [1]).id
    for job_id in (dead, queued):
        assert anonymous.post(f"/api/jobs/{job_id}/delete", headers=BEARER).status_code == 200
        assert not db.exists(keys.layout_of(db).job(job_id, "default"))
    assert db.zcard(keys.layout_of(db).dead("default")) == 0 and db.zcard(keys.layout_of(db).canceled("default")) == 0
    assert db.llen(keys.layout_of(db).queue("default")) == 0
    assert anonymous.post(f"/api/jobs/{dead}/delete", headers=BEARER).status_code == 404


def test_purge_asks_with_the_count_then_deletes(browser, project, db):
    client, csrf = browser
    ids = dead_jobs(project, db, "refuses", "refuses")
    form = {"csrf": csrf, "state": "dead", "older_than": "0s", "next": "/queues"}
    confirm = client.post("/api/queues/default/purge", data=form)
    assert confirm.status_code == 200 and "Delete <strong>2</strong> dead job(s)" in confirm.text
    assert all(db.exists(keys.layout_of(db).job(i, "default")) for i in ids)  # asking deletes nothing
    assert client.post("/api/queues/default/purge", data={**form, "confirm": "1"}).status_code == 303
    assert not any(db.exists(keys.layout_of(db).job(i, "default")) for i in ids)


def test_dead_set_requeue_selected_and_all_matching_a_filter(browser, project, db):
    client, csrf = browser
    *refused, failed_id = dead_jobs(project, db, "refuses", "refuses", "refuses", "always_fails")  # one worker run
    failed = [failed_id]
    answer = client.post(
        "/api/jobs/bulk",
        data={"csrf": csrf, "next": "/jobs?state=dead", "state": "dead", "action": "requeue", "ids": [refused[0]]},
    )
    assert answer.status_code == 303
    assert [records.job(db, i).state for i in refused] == ["queued", "dead", "dead"]
    answer = client.post(
        "/api/jobs/bulk",
        data={
            "csrf": csrf,
            "next": "/jobs?state=dead",
            "state": "dead",
            "action": "requeue",
            "all": "1",
            "job": "refuses",
            "queue": "",
        },
    )
    assert answer.status_code == 303
    assert [records.job(db, i).state for i in refused] == ["queued"] * 3
    assert records.job(db, failed[0]).state == "dead"  # did not match the filter
    answer = client.post("/api/jobs/bulk", headers=BEARER, data={"state": "dead", "action": "delete", "all": "1"})
    assert answer.json()["deleted"] == 1 and not db.exists(keys.layout_of(db).job(failed[0], "default"))


def test_run_a_recurring_entry_now(anonymous, project, db):
    project.write("recurring.yml", "nightly_add:\n  job: add\n  args: [40, 2]\n  schedule: '0 3 * * *'\n")
    answer = anonymous.post("/api/recurring/nightly_add/run", headers=BEARER)
    assert answer.status_code == 200
    job = records.job(db, answer.json()["id"])
    assert (job.job, job.args, job.state) == ("add", [40, 2], "queued")
    assert anonymous.post("/api/recurring/nope/run", headers=BEARER).status_code == 400


# --- reads ---------------------------------------------------------------------------------------


def without_moments(data):
    """status --json minus what moves between two reads (the time it was taken)."""
    data.pop("taken_at")
    return data


def test_api_answers_exactly_what_the_cli_prints(anonymous, project, db):
    finished = enqueue(db, load(project), "add", [1], {"b": 2}).id  # run by dead_jobs' worker
    [dead] = dead_jobs(project, db, "refuses")
    assert records.job(db, finished).state == "finished"
    cli_status = json.loads(project.run("status", "--json").stdout)
    assert without_moments(anonymous.get("/api/status", headers=BEARER).json()) == without_moments(cli_status)
    for job_id in (dead, finished):
        assert anonymous.get(f"/api/jobs/{job_id}", headers=BEARER).json() == project.show(job_id)
    assert anonymous.get("/api/stats", headers=BEARER).json() == json.loads(project.run("stats", "--json").stdout)
    cli = json.loads(project.run("stats", "--json", "--job", "add", "--recent", "1").stdout)
    assert anonymous.get("/api/stats?job=add&recent=1", headers=BEARER).json() == cli
    missing = anonymous.get("/api/jobs/no-such-job", headers=BEARER)
    assert missing.status_code == 404 and "no job with id" in missing.json()["error"]


def test_every_page_shows_the_jobs(browser, project, db):
    client, _ = browser
    [dead] = dead_jobs(project, db, "refuses")
    scheduled = enqueue(db, load(project), "add", [7], run_at=time.time() + 600).id
    project.write("recurring.yml", "nightly_add:\n  job: add\n  args: [40, 2]\n  schedule: '0 3 * * *'\n")
    for path in PAGES:
        page = client.get(path)
        assert page.status_code == 200, (path, page.text[:500])
        assert "<h1>" in page.text and "Log out" in page.text
    assert (
        dead in client.get("/jobs?state=dead").text and "bad input, do not retry" in client.get("/jobs?state=dead").text
    )
    assert scheduled in client.get("/jobs?state=scheduled").text
    assert "nightly_add" in client.get("/recurring").text
    assert "refuses" in client.get("/stats").text
    job_page = client.get(f"/jobs/{dead}").text
    assert "PermanentError" in job_page and "Requeue" in job_page  # the traceback and the action
    assert client.get("/jobs/no-such-job").status_code == 404
    assert client.get("/jobs?state=nonsense").status_code == 400
    assert client.get("/jobs?state=dead&queue=nonsense").status_code == 400


def test_overview_charts_count_executions_per_minute(browser, project, db):
    client, _ = browser
    enqueue(db, load(project), "add", [1])  # run by dead_jobs' worker
    dead_jobs(project, db, "refuses")
    history = jobstats.minute_history(db, ["default", "analytics"], 60)
    assert (sum(history.finished), sum(history.failed)) == (1, 1)
    day_key = keys.layout_of(db).minutes("default", int(time.time() // 86400))
    assert 0 < db.ttl(day_key) <= keys.MINUTES_TTL
    page = client.get("/").text
    assert "Last hour: <strong>2</strong> executions" in page and "1 failed" in page


def fill_queue(db, count: int) -> list[str]:
    ids = [f"fill-{n:05d}" for n in range(count)]
    with db.pipeline(transaction=False) as pipe:
        for n, job_id in enumerate(ids):
            pipe.hset(
                keys.layout_of(db).job(job_id, "default"),
                mapping={
                    "data": encode_payload("add", [n], {}),
                    "origin": "default",
                    "status": "queued",
                    "jobctl_job": "add",
                },
            )
        pipe.rpush(keys.layout_of(db).queue("default"), *ids)
        pipe.sadd(keys.QUEUES, keys.layout_of(db).queue("default"))  # as a producer registers its queue
        pipe.execute()
    return ids


def test_job_lists_page_and_a_filter_looks_through_a_bounded_window(browser, db):
    client, _ = browser
    ids = fill_queue(db, 2500)
    page = client.get("/jobs?state=queued&queue=default&start=50").text
    assert "2,500 queued job(s), showing 51–100" in page
    assert ids[50] in page and ids[99] in page and ids[100] not in page and ids[49] not in page
    assert 'href="/jobs?state=queued&amp;queue=default&amp;job=&amp;q=&amp;start=100"' in page
    filtered = client.get("/jobs?state=queued&q=fill-02499").text
    assert "Looked through entries 1–1,000 of 2,500" in filtered and "0 match" in filtered
    assert "start=1000" in filtered and "Look further" in filtered
    last_window = client.get("/jobs?state=queued&q=fill-02499&start=2000").text
    assert ids[2499] in last_window and "1 match" in last_window
    by_args = client.get("/jobs?state=queued&q=%5B1234%5D").text  # text in the arguments: [1234]
    assert ids[1234] not in by_args  # beyond the first window
    assert ids[1234] in client.get("/jobs?state=queued&q=%5B1234%5D&start=1000").text


# --- the command -----------------------------------------------------------------------------------


def test_jobctl_help_does_not_import_the_web_stack(project):
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "jobctl", "--help"],
        cwd=project.path,
        env=project.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert not {"starlette", "uvicorn", "jinja2"} & imported


def test_web_command_prints_a_login_url_and_warns_beyond_localhost(project):
    port = free_port()
    process = project.start("web", "--host", "0.0.0.0", "--port", str(port))
    wait_for(lambda: _answers(port) or process.poll() is not None, message="jobctl web answering")
    assert process.poll() is None
    process.terminate()
    out, err = process.communicate(timeout=15)
    line = out.strip().splitlines()[0]
    assert line.startswith(f"jobctl web: http://0.0.0.0:{port}/login#token=")
    token = line.split("#token=", 1)[1].split()[0]
    assert len(token) >= 24
    assert "beyond this machine" in err and len([x for x in err.splitlines() if "beyond this machine" in x]) == 1


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/login", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def start_dashboard(project, *options: str) -> tuple[subprocess.Popen, str]:
    """`jobctl web` on a free port with TOKEN, answering; the process and its base URL."""
    port = free_port()
    process = project.start("web", "--port", str(port), *options, env={"JOBCTL_WEB_TOKEN": TOKEN})
    wait_for(lambda: _answers(port) or process.poll() is not None, message="jobctl web answering")
    assert process.poll() is None, process.communicate()
    return process, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("options", "seen_from", "secure"),
    [
        ((), "127.0.0.1", False),  # by default a local proxy's headers are not believed either
        (("--forwarded-allow-ips", "127.0.0.1"), "198.51.100.9", True),
    ],
)
def test_forwarded_headers_are_believed_only_from_the_proxies_named(project, options, seen_from, secure):
    process, base = start_dashboard(project, *options)
    with httpx.Client(base_url=base, timeout=30) as client:
        login = client.post("/login", data={"token": TOKEN}, headers={"X-Forwarded-Proto": "https"})
        assert login.status_code == 303 and ("Secure" in login.headers["set-cookie"]) is secure
        before = time.monotonic()
        for claimed in ("203.0.113.7", "198.51.100.9"):  # a fresh address at each try, if believed
            assert client.get("/api/status", headers={**WRONG, "X-Forwarded-For": claimed}).status_code == 401
        if not options:  # both tries from 127.0.0.1: the second waited twice as long as the first
            assert time.monotonic() - before >= FIRST_DELAY * (1 + 2)
    process.terminate()
    _, err = process.communicate(timeout=15)
    wrong = [line for line in err.splitlines() if "wrong token from" in line]
    assert len(wrong) == 2 and f"wrong token from {seen_from} ({1 if options else 2} from there" in wrong[1], err


def test_a_token_shorter_than_16_characters_is_refused_at_start(project):
    result = project.run("web", "--port", str(free_port()), env={"JOBCTL_WEB_TOKEN": "x" * 15}, timeout=30)
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("jobctl: error: $JOBCTL_WEB_TOKEN has 15 characters: it needs at least 16 "), line


@pytest.mark.parametrize(
    ("option", "value", "names"),
    [
        ("--forwarded-allow-ips", "127.0.0.1,proxy.local", "'proxy.local' is not an IP address or network"),
        ("--forwarded-allow-ips", "10.0.0.1/8", "'10.0.0.1/8' is not an IP address or network"),
        ("--allowed-hosts", "dash.example,evil*.example", "'evil*.example' is not a host name"),
    ],
)
def test_a_bad_proxy_or_host_list_is_refused_in_one_line(project, option, value, names):
    result = project.run("web", "--port", str(free_port()), option, value, env={"JOBCTL_WEB_TOKEN": TOKEN}, timeout=30)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert option in result.stderr and names in result.stderr


def test_workers_and_queues_pages_with_workers_running(browser, project, db, tmp_path):
    """The pages a fleet is watched on, while it runs: the Workers page lists each worker with
    its concurrency and running job, the Queues page counts each queue's workers; the overview
    and the Workers page read the running job's long argument no further than a list does."""
    client, _ = browser
    marker, gate = tmp_path / "marker", tmp_path / "gate"
    long_text = "".join(random.Random(2).choices(string.ascii_letters, k=2_000_000))  # barely compressible
    running = enqueue(db, load(project), "gated", [str(marker), str(gate)], {"text": long_text}).id
    project.start("work", "--queue", "default")
    try:
        wait_for(marker.exists, timeout=30, message="the gated job running")
        wait_for(lambda: len(api.workers(db)) == 2, message="both workers of default registered")
        page = client.get("/workers")
        assert page.status_code == 200, page.text[:500]
        assert "2 worker process(es)" in page.text and running in page.text
        queues = client.get("/queues")
        assert queues.status_code == 200
        default_row = queues.text.split('<th scope="row">default</th>', 1)[1].split("</tr>", 1)[0]
        assert '<td class="num">1/2</td>' in default_row  # busy/total: one runs the gated job
        for path in ("/", "/workers"):  # what Redis sent while the page was read: not the argument
            sent = db.info("stats")["total_net_output_bytes"]
            assert client.get(path).status_code == 200
            assert db.info("stats")["total_net_output_bytes"] - sent < 200_000, path
        assert [job["kwargs"] for job in client.get("/api/status").json()["running"]] == [{"text": long_text}]
    finally:
        gate.write_text("")


def test_job_lists_show_a_bounded_escaped_preview_of_long_arguments(browser, settings, db):
    """A list row shows the start of a job's arguments, escaped, whatever their size; the job's
    page shows the first SHOWN_CHARS characters and links its JSON, which has all of them."""
    from jobctl.web.pages import PREVIEW_CHARS, SHOWN_CHARS

    client, _ = browser
    letters = "<b>&" + "".join(random.Random(1).choices(string.ascii_letters, k=3_000_000))  # barely compressible
    repeated = "<i>" + "y" * 5_000_000  # compresses to a few KB: the list still decompresses no more than it shows
    big = [enqueue(db, settings.queues, "echo_kwargs", [text], {"note": "tail"}).id for text in (letters, repeated)]
    small = enqueue(db, settings.queues, "add", [1], {"b": 2}).id

    sent = db.info("stats")["total_net_output_bytes"]
    page = client.get("/jobs?state=queued")
    assert page.status_code == 200
    # what Redis sent for the list: the start of each argument, not the 2 MB that compressed to
    # (the server's memory for a list is bounded by it, whatever the arguments weigh)
    assert db.info("stats")["total_net_output_bytes"] - sent < 200_000
    assert len(page.content) < 60_000  # was 8 MB: every argument in full
    assert "&#34;&lt;b&gt;&amp;" in page.text and "<b>&" not in page.text  # escaped
    assert "&#34;&lt;i&gt;yyy" in page.text
    assert letters[:PREVIEW_CHARS] not in page.text  # a preview, not the argument
    assert "1, b=2" in page.text  # a short call is shown as it is
    assert all(job_id in page.text for job_id in [*big, small])
    found = client.get("/jobs?state=queued&q=<b>%26")  # the filter looks in the preview
    assert big[0] in found.text and big[1] not in found.text

    job_page = client.get(f"/jobs/{big[0]}")
    assert job_page.status_code == 200 and len(job_page.content) < SHOWN_CHARS * 2
    assert "characters: all of it in" in job_page.text and f'href="/api/jobs/{big[0]}"' in job_page.text
    assert client.get(f"/api/jobs/{big[0]}").json()["args"] == [letters]


def test_queues_page_and_overview_show_an_elastic_range(settings, project):
    project.write("queue.yml", "default: {worker_count: 1..4}\nanalytics: {worker_count: 2}\n")
    with client_for(settings) as client:
        log_in(client)
        for path in ("/queues", "/"):
            page = client.get(path)
            assert page.status_code == 200
            default_row = page.text.split(">default</", 1)[1].split("</tr>", 1)[0]
            assert "0/0 <span" in default_row and "of 1..4</span>" in default_row, default_row
            analytics_row = page.text.split(">analytics</", 1)[1].split("</tr>", 1)[0]
            assert '<td class="num">0/0</td>' in analytics_row  # a fixed count shows no range
        default = next(q for q in client.get("/api/status").json()["queues"] if q["name"] == "default")
        assert (default["workers"], default["min_workers"], default["max_workers"]) == (0, 1, 4)


@pytest.mark.plain_only("a cluster keeps a breaker per queue and names its queue (store on default; docs/cluster.md)")
def test_the_overview_shows_a_badge_per_circuit_breaker(settings, project, db):
    project.write("queue.yml", "default: {}\nbreakers: {store: {cooldown: 5m}, mail: {}}\n")
    db.hset(
        keys.layout_of(db).breaker("store", "default"),
        mapping={"state": "open", "opened_at": time.time(), "open_until": time.time() + 300},
    )
    with client_for(settings) as client:
        log_in(client)
        page = client.get("/")
        assert page.status_code == 200
        assert '<span class="state state-breaker-open"' in page.text and ">store: open</span>" in page.text
        assert ">mail: closed</span>" in page.text
        shown = {b["name"]: b["state"] for b in client.get("/api/status").json()["breakers"]}
        assert shown == {"store": "open", "mail": "closed"}
