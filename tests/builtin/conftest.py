"""Fixtures for the built-in jobs: a scratch working directory, the store on SQLite and (when
it answers) PostgreSQL, a small channel with hand-checkable numbers, and local HTTP/SMTP servers.

PostgreSQL: a database `jobctl_test_<pid>` is created on 127.0.0.1:5432 for the session and dropped
after it (`JOBCTL_TEST_POSTGRES_URL` points elsewhere: a server URL whose database we may use
to create ours). Tests that take `store_backend` run once per backend; PostgreSQL runs are
skipped when no server answers.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import create_engine, make_url, text

from jobctl.api.context import Execution, executing
from jobctl.builtin import store

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "src" / "jobctl" / "builtin" / "example_data"
POSTGRES_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TEST_DATABASE = f"jobctl_test_{os.getpid()}"  # one per test process: sessions may run side by side

ENVIRONMENT = (
    "JOBCTL_DATABASE_URL",
    "YOUTUBE_API_KEY",
    "JOBCTL_YOUTUBE_API_URL",
    "JOBCTL_CHANNEL_SOURCE",
    "JOBCTL_CHANNELS_DIR",
    "JOBCTL_NOTIFY",
    "JOBCTL_WEBHOOK_URL",
    "JOBCTL_SMTP_URL",
    "JOBCTL_NOTIFY_EMAIL_TO",
    "JOBCTL_NOTIFY_EMAIL_FROM",
)


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    """Each test runs in its own empty directory with no jobctl settings from the outside."""
    for variable in ENVIRONMENT:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    store.dispose_engines()


@pytest.fixture(scope="session")
def postgres_url():
    """URL of a scratch database for this test session, or None when PostgreSQL is down."""
    server = make_url(os.environ.get("JOBCTL_TEST_POSTGRES_URL", POSTGRES_SERVER_URL))
    try:
        admin = create_engine(server, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {TEST_DATABASE} WITH (FORCE)"))
            conn.execute(text(f"CREATE DATABASE {TEST_DATABASE}"))
    except Exception as exc:  # noqa: BLE001 - no server, no rights: the PostgreSQL runs are skipped
        # psycopg's first line ends with the cause: "... port 5432 failed: Connection refused"
        cause = str(getattr(exc, "orig", exc)).strip().split("\n")[0].split(": ")[-1].strip() or type(exc).__name__
        yield (
            None,
            (
                f"PostgreSQL not usable at {server.render_as_string()} ({cause}): start one there "
                "(apt-get install postgresql) or set JOBCTL_TEST_POSTGRES_URL"
            ),
        )
        return
    yield server.set(database=TEST_DATABASE).render_as_string(hide_password=False), None
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {TEST_DATABASE} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_backend(request, monkeypatch, postgres_url):
    """The store on SQLite under the test's directory, then on the scratch PostgreSQL database."""
    if request.param == "postgresql":
        url, reason = postgres_url
        if url is None:
            pytest.skip(reason)
        monkeypatch.setenv("JOBCTL_DATABASE_URL", url)
    yield request.param
    if request.param == "postgresql":
        with store.engine().begin() as conn:
            store.metadata.drop_all(conn)


class ProgressLog(list):
    """(percent, message) pairs a job reported."""

    @property
    def percents(self) -> list[float]:
        return [percent for percent, _ in self]


@pytest.fixture
def run_job():
    """Call a job function as a worker would, recording its progress: run_job(func, *args)."""

    def run(func, *args, **kwargs):
        seen = ProgressLog()
        with executing(Execution("test-job", func.__name__, on_progress=lambda p, m: seen.append((p, m)))):
            result = func(*args, **kwargs)
        run.progress = seen
        return result

    return run


# --- a small channel whose figures are easy to check by hand ---------------------------------

CHANNEL_ID = "UCsmallTestChannel000001"
FIRST_DAY = date(2025, 5, 1)
DAYS = 29  # 2025-05-01 .. 2025-05-29: one 28-day window


def small_history() -> list[tuple[date, int, int]]:
    """(day, subscribers, views): +5 subscribers and +1,000 views a day, except the last day:
    +25 subscribers (985 -> 1,010, crossing 1,000) and +5,000 views (5x the daily average)."""
    history = [(FIRST_DAY + timedelta(days=i), 850 + 5 * i, 50_000 + 1_000 * i) for i in range(DAYS - 1)]
    history.append((FIRST_DAY + timedelta(days=DAYS - 1), 1_010, 82_000))
    return history


# title, published (UTC), views, likes, comments: 30,000 views in all, 5,000 on average
SMALL_VIDEOS = [
    ("Sourdough basics", datetime(2025, 5, 5, 17, 0, tzinfo=UTC), 12_000, 500, 100),  # Monday
    ("Sourdough starter tips", datetime(2025, 5, 12, 17, 0, tzinfo=UTC), 8_000, 300, 100),  # Monday
    ("Knife skills for beginners", datetime(2025, 5, 15, 9, 0, tzinfo=UTC), 5_000, 200, 50),  # Thursday
    ("Sourdough pizza at home", datetime(2025, 5, 17, 17, 0, tzinfo=UTC), 3_000, 90, 30),  # Saturday
    ("Weeknight pasta", datetime(2025, 5, 22, 9, 0, tzinfo=UTC), 1_500, 40, 5),  # Thursday
    ("Pasta night", datetime(2025, 5, 29, 3, 0, tzinfo=UTC), 500, 10, 0),  # Thursday, last day
]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def channel_resource(channel_id: str = CHANNEL_ID, title: str = "Small Test Kitchen") -> dict:
    _, subscribers, views = small_history()[-1]
    return {
        "kind": "youtube#channel",
        "id": channel_id,
        "snippet": {
            "title": title,
            "description": "A test channel",
            "customUrl": "@smalltest",
            "publishedAt": "2019-02-03T10:00:00Z",
            "country": "GB",
        },
        "contentDetails": {"relatedPlaylists": {"uploads": "UU" + channel_id[2:]}},
        "statistics": {
            "viewCount": str(views),
            "subscriberCount": str(subscribers),
            "hiddenSubscriberCount": False,
            "videoCount": str(len(SMALL_VIDEOS)),
        },
    }


def video_resources(channel_id: str = CHANNEL_ID) -> list[dict]:
    return [
        {
            "kind": "youtube#video",
            "id": f"vid{index:08d}",
            "snippet": {
                "publishedAt": _iso(published),
                "channelId": channel_id,
                "title": title,
                "description": "",
                "tags": [],
            },
            "contentDetails": {"duration": "PT7M30S"},
            "statistics": {"viewCount": str(views), "likeCount": str(likes), "commentCount": str(comments)},
        }
        for index, (title, published, views, likes, comments) in enumerate(SMALL_VIDEOS, start=1)
    ]


@pytest.fixture
def small_channel(workdir, monkeypatch) -> str:
    """An exports directory holding the small channel; the exports source pointed at it."""
    exports = workdir / "exports"
    exports.mkdir()
    export = {
        "channel": channel_resource(),
        "videos": video_resources(),
        "history": [
            {
                "capturedAt": f"{day.isoformat()}T06:00:00Z",
                "statistics": {"viewCount": str(views), "subscriberCount": str(subscribers), "videoCount": "6"},
            }
            for day, subscribers, views in small_history()
        ],
    }
    (exports / f"{CHANNEL_ID}.json").write_text(json.dumps(export), encoding="utf-8")
    monkeypatch.setenv("JOBCTL_CHANNELS_DIR", str(exports))
    return CHANNEL_ID


@pytest.fixture
def synced_channel(small_channel, store_backend) -> str:
    from jobctl.builtin.channels import channel_sync

    channel_sync(small_channel)
    return small_channel


# --- a local HTTP server: the YouTube Data API and a webhook receiver ------------------------


class FakeServer:
    """Answers like the YouTube Data API v3 under /youtube/v3/, and records webhook POSTs.

    `fail_next.append((path, status))` makes the next request to that path answer `status`.
    """

    API_KEY = "test-key"

    def __init__(self):
        self.channels: dict[str, dict] = {CHANNEL_ID: channel_resource()}
        self.videos: dict[str, list[dict]] = {CHANNEL_ID: video_resources()}
        self.fail_next: list[tuple[str, int]] = []
        self.requests: list[str] = []
        self.webhooks: list[dict] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, method: str, path: str, query: dict, body: bytes) -> tuple[int, object]:
        self.requests.append(f"{method} {path}")
        for failure in self.fail_next:
            if failure[0] == path:
                self.fail_next.remove(failure)
                return failure[1], {"error": {"code": failure[1], "message": f"injected {failure[1]}"}}
        if method == "POST" and path == "/webhook":
            self.webhooks.append(json.loads(body))
            return 204, None
        if query.get("key") != [self.API_KEY]:
            return 403, {"error": {"code": 403, "message": "API key not valid. Please pass a valid API key."}}
        if path == "/youtube/v3/channels":
            found = [self.channels[i] for i in query["id"][0].split(",") if i in self.channels]
            return 200, {
                "kind": "youtube#channelListResponse",
                "pageInfo": {"totalResults": len(found)},
                "items": found,
            }
        if path == "/youtube/v3/playlistItems":
            channel_id = "UC" + query["playlistId"][0][2:]
            if channel_id not in self.videos:
                return 404, {
                    "error": {
                        "code": 404,
                        "message": "The playlist identified with the request's playlistId parameter cannot be found.",
                    }
                }
            return 200, {"items": [{"contentDetails": {"videoId": v["id"]}} for v in self.videos[channel_id]]}
        if path == "/youtube/v3/videos":
            wanted = set(query["id"][0].split(","))
            return 200, {"items": [v for vs in self.videos.values() for v in vs if v["id"] in wanted]}
        return 404, {"error": {"code": 404, "message": "Not Found"}}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _respond(self, method):
                parts = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, payload = server._answer(method, parts.path, parse_qs(parts.query), body)
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._respond("GET")

            def do_POST(self):
                self._respond("POST")

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def fake_server():
    server = FakeServer()
    yield server
    server.close()


@pytest.fixture
def youtube(fake_server, monkeypatch) -> FakeServer:
    """The YouTube source, pointed at the local fake API."""
    monkeypatch.setenv("YOUTUBE_API_KEY", FakeServer.API_KEY)
    monkeypatch.setenv("JOBCTL_YOUTUBE_API_URL", f"{fake_server.url}/youtube/v3")
    return fake_server


# --- a local SMTP server ------------------------------------------------------------------------


@pytest.fixture
def smtp_server():
    """An aiosmtpd server on a free port; `.messages` holds what it received."""
    from aiosmtpd.controller import Controller

    class Collect:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope)
            return "250 Message accepted for delivery"

    with socket.socket() as probe:  # aiosmtpd needs a concrete port to check it started
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = Collect()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    controller.messages = handler.messages
    controller.url = f"smtp://127.0.0.1:{port}"
    yield controller
    controller.stop()
