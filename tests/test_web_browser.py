"""`jobctl web` in a real browser: Debian's Chromium, headless, driven over the DevTools protocol.
It logs in through the login page, opens every page at 1280x800 and at a phone's width, requeues a
dead job by clicking its button, sees a page update in place, and saves screenshots; and, with
workers running jobs, checks every page's numbers against `status --json`."""

import base64
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import free_port, wait_for

from jobctl.api import reads as api
from jobctl.api import records
from jobctl.store import keys

CHROMIUM = shutil.which("chromium")
TOKEN = "browser-test-token-42"
PAGES = {
    "overview": "/",
    "queues": "/queues",
    "jobs": "/jobs?state=queued",
    "scheduled": "/jobs?state=scheduled",
    "deferred": "/jobs?state=deferred",
    "dead": "/jobs?state=dead",
    "recurring": "/recurring",
    "workers": "/workers",
    "stats": "/stats",
}

if CHROMIUM is None:
    pytest.skip("chromium not found: apt-get install chromium", allow_module_level=True)

import websocket  # noqa: E402  (a test dependency, imported once Chromium is known to be there)


class Page:
    """One Chromium tab over the DevTools protocol: navigate, evaluate, click, type, screenshot."""

    def __init__(self, websocket_url: str):
        self.socket = websocket.create_connection(websocket_url, timeout=30, suppress_origin=True)
        self.next_id = 0

    def send(self, method: str, **params) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def loaded(self, path: str) -> bool:
        return self.evaluate(
            f"location.pathname + location.search === {json.dumps(path)} && document.readyState === 'complete'"
        )

    def open(self, url: str, path: str) -> None:
        self.send("Page.navigate", url=url)
        wait_for(lambda: self.loaded(path), message=f"{path} loaded")

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element (pressed and released)."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView(); "
            "const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def type(self, text: str) -> None:
        self.send("Input.insertText", text=text)

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))
        return path

    def size(self, width: int, height: int, mobile: bool = False) -> None:
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=mobile)

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def chromium(tmp_path):
    profile = tmp_path / "chromium-profile"
    process = subprocess.Popen(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "--window-size=1280,800",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        active = profile / "DevToolsActivePort"
        wait_for(lambda: active.exists() and active.read_text().strip(), timeout=30, message="Chromium's DevTools port")
        port = active.read_text().split()[0]
        targets = wait_for(
            lambda: [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list").json() if t["type"] == "page"],
            message="a Chromium tab",
        )
        page = Page(targets[0]["webSocketDebuggerUrl"])
        page.send("Page.enable")
        page.size(1280, 800)
        yield page
        page.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # Chromium and its helpers: the group this test started
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@pytest.fixture
def dashboard(project):
    """`jobctl web` on a free port, as a user starts it; its base URL."""
    port = free_port()
    project.start("web", "--port", str(port), env={"JOBCTL_WEB_TOKEN": TOKEN})
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{base}/login", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(answers, timeout=30, message="jobctl web answering")
    return base


def test_log_in_open_every_page_and_requeue_a_dead_job_by_clicking(project, db, chromium, dashboard, tmp_path):
    dead = [project.enqueue("refuses") for _ in range(2)]
    project.enqueue("add", "1", "-k", "b=2")
    assert project.run("work", "--burst").returncode == 0
    project.enqueue("add", "5", "--in", "1h")
    project.write("recurring.yml", "nightly_add:\n  job: add\n  args: [40, 2]\n  schedule: '0 3 * * *'\n")
    shots = tmp_path / "screenshots"
    shots.mkdir()

    # not logged in: the login page; type the token and click "Log in"
    chromium.open(f"{dashboard}/", "/login?next=%2F")
    chromium.click("#token")
    chromium.type(TOKEN)
    chromium.screenshot(shots / "login.png")
    chromium.click("#login button[type=submit]")
    wait_for(lambda: chromium.loaded("/"), message="the overview after logging in")

    for name, path in PAGES.items():
        chromium.open(f"{dashboard}{path}", path)
        assert chromium.evaluate("document.querySelector('h1').textContent") != ""
        assert chromium.evaluate("document.querySelector('.error') === null"), name
        # keyboard: every action is a real button, every page link a real link, reachable by Tab
        assert chromium.evaluate("document.querySelectorAll('header nav a[href]').length") == 9
        chromium.screenshot(shots / f"{name}.png")

    # the dead set: click the first job's Requeue button
    chromium.open(f"{dashboard}/jobs?state=dead", "/jobs?state=dead")
    assert all(job_id in chromium.evaluate("document.body.innerText") for job_id in dead)
    chromium.click(f'button[aria-label="Requeue {dead[0]}"]')
    wait_for(lambda: records.job(db, dead[0]).state == "queued", message="the clicked job queued again")
    assert dead[0].encode() in db.lrange(keys.queue("default"), 0, -1)
    assert records.job(db, dead[1]).state == "dead"
    wait_for(
        lambda: (
            chromium.evaluate("(document.querySelector('.flash') || {}).textContent || ''") == f"requeued {dead[0]}"
        ),
        message="the message after the click",
    )
    chromium.screenshot(shots / "dead-after-requeue.png")

    # live: the overview follows Redis without a reload
    chromium.open(f"{dashboard}/", "/")
    chromium.evaluate("window.notReloaded = true")
    db.sadd(keys.PAUSED, "analytics")
    wait_for(
        lambda: chromium.evaluate("document.querySelector('#overview-queues').innerText.includes('paused')"),
        timeout=10,
        message="the overview showing the paused queue",
    )
    assert chromium.evaluate("window.notReloaded === true")
    chromium.screenshot(shots / "overview-live.png")

    # a phone's width: nothing wider than the screen (tables scroll inside their own box)
    chromium.size(390, 844, mobile=True)
    for name, path in PAGES.items():
        chromium.open(f"{dashboard}{path}", path)
        assert chromium.evaluate("document.documentElement.scrollWidth") <= 390, name
    chromium.open(f"{dashboard}/jobs/{dead[1]}", f"/jobs/{dead[1]}")
    chromium.screenshot(shots / "job-phone.png")
    assert all((shots / f"{name}.png").stat().st_size > 10_000 for name in PAGES)


def test_every_page_keeps_to_the_content_security_policy(project, db, chromium, dashboard):
    """The server forbids inline scripts and styles (CSP): the pages must not need any. Logging in by
    the #token URL runs app.js; every page then records no CSP violation."""
    chromium.send(
        "Page.addScriptToEvaluateOnNewDocument",
        source="window.violations = []; document.addEventListener('securitypolicyviolation', "
        "e => window.violations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));",
    )
    dead = project.enqueue("refuses")
    assert project.run("work", "--burst").returncode == 0
    chromium.send("Page.navigate", url=f"{dashboard}/login#token={TOKEN}")
    wait_for(lambda: chromium.loaded("/"), message="app.js logging in with the token of the URL")
    for path in [*PAGES.values(), f"/jobs/{dead}"]:
        chromium.open(f"{dashboard}{path}", path)
        assert chromium.evaluate("window.violations") == [], path
        assert chromium.evaluate("document.styleSheets[0].cssRules.length") > 0, path  # app.css applied


FLEET_YML = """\
defaults: {timeout: 5m, shutdown_timeout: 10s, retry_delay: 100ms, backoff: fixed}
default: {worker_count: 2, max_retries: 0}
analytics: {worker_count: 1}
reports: {worker_count: 1, concurrency: 2}
"""
# what the page shows, read from the DOM: queue name -> its cells' texts, and the headings' numbers
READ_OVERVIEW = """(() => {
  const rows = {};
  document.querySelectorAll('#overview-queues tbody tr').forEach(row => {
    rows[row.querySelector('th a').textContent] = [...row.querySelectorAll('td')].map(cell => cell.innerText.trim());
  });
  return {rows, running: document.querySelector('#running-title').textContent,
          running_rows: document.querySelectorAll('#overview-running tbody tr').length};
})()"""
READ_QUEUES = """(() => {
  const rows = {};
  document.querySelectorAll('#queues-table tbody tr').forEach(row => {
    rows[row.querySelector('th').textContent] = [...row.querySelectorAll('td.num')].map(cell => cell.innerText.trim());
  });
  return rows;
})()"""
READ_WORKERS = """(() => ({
  summary: document.querySelector('#workers-live p').textContent,
  rows: [...document.querySelectorAll('#workers-live tbody tr')].map(row => ({
    name: row.cells[0].innerText.trim(), concurrency: row.cells[3].innerText.trim(),
    state: row.cells[4].innerText.trim(),
    jobs: [...row.cells[5].querySelectorAll('a')].map(link => link.textContent)})),
}))()"""


def number(text: str) -> int:
    return int(text.replace(",", ""))


def test_every_page_shows_what_status_json_shows_while_workers_run_jobs(project, db, chromium, dashboard, tmp_path):
    """A live fleet: a supervisor's four workers on three queues (one with two threads) hold five
    jobs running until the test opens a gate, with more queued, scheduled and dead behind them.
    Each page's numbers equal `status --json` (and `stats --json`) taken while the page shows;
    once the gate opens and the jobs end, the overview follows without a reload."""
    project.write("queue.yml", FLEET_YML)
    dead = project.enqueue("refuses")
    assert project.run("work", "--burst", "--queue", "default").returncode == 0
    gate = tmp_path / "gate"
    markers = []
    for queue, count in (("default", 4), ("analytics", 2), ("reports", 3)):
        for n in range(count):
            markers.append(tmp_path / f"{queue}-{n}")
            project.enqueue("gated", str(markers[-1]), str(gate), "--queue", queue)
    project.enqueue("add", "1", "--in", "1h", "--queue", "analytics")
    project.start("work")
    try:
        # two on default, one on analytics, two threads of reports: five running, the rest held back
        wait_for(lambda: sum(m.exists() for m in markers) == 5, timeout=60, message="five gated jobs running")
        status = wait_for(
            lambda: (s := json.loads(project.run("status", "--json").stdout)) and len(s["running"]) == 5 and s,
            message="status --json showing the five running jobs",
        )
        stats = json.loads(project.run("stats", "--json").stdout)
        queues = {q["name"]: q for q in status["queues"]}
        assert sum(q["started"] for q in queues.values()) == 5 and queues["default"]["dead"] == 1

        chromium.open(f"{dashboard}/login#token={TOKEN}", "/")
        shown = chromium.evaluate(READ_OVERVIEW)
        for name, queue in queues.items():
            cells = shown["rows"][name]
            assert [number(c) for c in cells[:7]] == [queue[s] for s in api.STATES], name
            assert cells[7] == f"{queue['busy']}/{queue['workers']}", name
        live = [w for w in status["workers"] if w["state"] != "gone"]
        assert shown["running"] == f"Running now (5 of {len(live)} workers)" and shown["running_rows"] == 5

        chromium.open(f"{dashboard}/queues", "/queues")
        for name, cells in chromium.evaluate(READ_QUEUES).items():
            queue = queues[name]
            expected = [queue["queued"], queue["scheduled"], queue["started"], queue["dead"]]
            assert [number(c) for c in cells[:4]] == expected and cells[4] == f"{queue['busy']}/{queue['workers']}"

        for state in api.STATES:
            path = f"/jobs?state={state}"
            chromium.open(f"{dashboard}{path}", path)
            total = sum(q[state] for q in queues.values())
            summary = chromium.evaluate("document.querySelector('#jobs-list .summary').textContent")
            assert f"{total:,} {state} job(s)" in " ".join(summary.split()), (state, summary)
            assert chromium.evaluate("document.querySelectorAll('#jobs-list tbody tr td a.mono').length") == total
        running_ids = {job["id"] for job in status["running"]}
        chromium.open(f"{dashboard}/jobs?state=started", "/jobs?state=started")
        listed = chromium.evaluate("[...document.querySelectorAll('#jobs-list tbody a.mono')].map(a => a.textContent)")
        assert set(listed) == running_ids

        chromium.open(f"{dashboard}/workers", "/workers")
        workers = chromium.evaluate(READ_WORKERS)
        assert workers["summary"].startswith(f"{len(status['workers'])} worker process(es)")
        by_name = {w["name"]: w for w in status["workers"]}
        assert {row["name"] for row in workers["rows"]} == set(by_name)
        for row in workers["rows"]:
            worker = by_name[row["name"]]
            assert row["state"] == worker["state"] and row["jobs"] == worker["jobs"], row
            assert number(row["concurrency"]) == worker["concurrency"]
        assert sum(len(row["jobs"]) for row in workers["rows"]) == sum(len(w["jobs"]) for w in live)

        chromium.open(f"{dashboard}/stats", "/stats")
        runs = chromium.evaluate(
            "Object.fromEntries([...document.querySelectorAll('#stats-live table')[0].querySelectorAll('tbody tr')]"
            ".map(row => [row.querySelector('th').innerText.trim(), row.cells[1].innerText.trim()]))"
        )
        assert {name: number(count) for name, count in runs.items()} == {j["name"]: j["runs"] for j in stats["jobs"]}

        some_running = min(running_ids)
        chromium.open(f"{dashboard}/jobs/{some_running}", f"/jobs/{some_running}")
        headline = chromium.evaluate("document.querySelector('.headline').innerText")
        assert headline.startswith("started gated on") and "running on" in headline
        chromium.open(f"{dashboard}/jobs/{dead}", f"/jobs/{dead}")
        assert chromium.evaluate("document.querySelector('.headline').innerText").startswith("dead refuses")

        # the gate opens: every gated job ends; the overview, left open, catches up by itself
        chromium.open(f"{dashboard}/", "/")
        gate.write_text("")
        ended = wait_for(
            lambda: (
                (s := json.loads(project.run("status", "--json").stdout))
                and not s["running"]
                and {q["name"]: q["finished"] for q in s["queues"]} == {"default": 4, "analytics": 2, "reports": 3}
                and s
            ),
            timeout=60,
            message="every gated job finished",
        )

        def overview_matches() -> bool:
            rows = chromium.evaluate(READ_OVERVIEW)["rows"]
            return all([number(c) for c in rows[q["name"]][:7]] == [q[s] for s in api.STATES] for q in ended["queues"])

        wait_for(overview_matches, timeout=15, message="the overview showing the ended jobs without a reload")
    finally:
        gate.write_text("")
