"""`jobctl web` in a real browser: Debian's Chromium, headless, driven over the DevTools protocol.
It logs in through the login page, opens every page at 1280x800 and at a phone's width, requeues a
dead job by clicking its button, sees a page update in place, and saves screenshots."""

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

from jobctl import api, keys

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
    wait_for(lambda: api.job(db, dead[0]).state == "queued", message="the clicked job queued again")
    assert dead[0].encode() in db.lrange(keys.queue("default"), 0, -1)
    assert api.job(db, dead[1]).state == "dead"
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
