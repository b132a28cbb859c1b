"""notifications: detect changes in a channel's latest data and alert on each, once.

Rules, over the stored snapshots (one per day) and videos:

- milestone: the subscriber count crossed a 1-2-5 step (1,000, 2,000, 5,000, 10,000, ...)
  between the two latest snapshots;
- view_spike: the views gained on the latest day are at least 2x the mean daily gain of up to
  7 days before it (with at least 3 such days to compare with);
- new_video: a video published after the previous snapshot's day;
- sync_failing: the channel's last 3 or more sync attempts failed.

Each alert has a natural key (e.g. `milestone:100000`, `new_video:<id>`) and is recorded in
`alerts`; each notifier's delivery of it is recorded in `alert_deliveries` right after it is
sent, so a retry or a re-run sends only what was not sent yet. (A worker killed between the
send and the record would send that one alert again on retry: at-least-once, the safe side.)

Notifiers, `JOBCTL_NOTIFY` (comma-separated, default `log`):

- log: a WARNING on the `jobctl.alerts` logger, so it shows without any logging setup;
- webhook: POST of the alert as JSON to `JOBCTL_WEBHOOK_URL` (429/5xx/timeouts retried);
- email: through `JOBCTL_SMTP_URL` (`smtp://[user:password@]host:port`, or `smtps://`) to
  `JOBCTL_NOTIFY_EMAIL_TO` (comma-separated), from `JOBCTL_NOTIFY_EMAIL_FROM`
  (default `jobctl@localhost`).
"""

from __future__ import annotations

import logging
import os
import smtplib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from itertools import pairwise
from statistics import fmean
from typing import Protocol
from urllib.parse import unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.engine import Row

from .. import PermanentError, job, progress
from . import store
from .channels import channel_title, load_snapshots, load_videos
from .http import request_json

SPIKE_FACTOR = 2.0
SPIKE_BASELINE_DAYS = 7
SPIKE_MIN_BASELINE_DAYS = 3
FAILING_SYNCS = 3

log = logging.getLogger("jobctl.alerts")


@dataclass(frozen=True)
class Alert:
    channel_id: str
    key: str
    kind: str
    message: str


class Notifier(Protocol):
    name: str

    def send(self, alert: Alert) -> None: ...


class LogNotifier:
    name = "log"

    def send(self, alert: Alert) -> None:
        log.warning("%s [%s] %s", alert.channel_id, alert.kind, alert.message)


class WebhookNotifier:
    name = "webhook"

    def __init__(self, url: str):
        self.url = url

    def send(self, alert: Alert) -> None:
        request_json("POST", self.url, body=asdict(alert))


class EmailNotifier:
    name = "email"

    def __init__(self, smtp_url: str, recipients: list[str], sender: str):
        parts = urlsplit(smtp_url)
        host = parts.hostname
        if parts.scheme not in ("smtp", "smtps") or not host:
            raise PermanentError(f"JOBCTL_SMTP_URL must look like smtp://host:port, not {smtp_url!r}")
        self.parts = parts
        self.host = host
        self.recipients = recipients
        self.sender = sender

    def send(self, alert: Alert) -> None:
        message = EmailMessage()
        message["Subject"] = f"[jobctl] {alert.message}"
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(f"{alert.message}\n\nchannel: {alert.channel_id}\nalert: {alert.key}\n")
        client = smtplib.SMTP_SSL if self.parts.scheme == "smtps" else smtplib.SMTP
        # Connection failures are OSErrors: ordinary exceptions, so the job is retried.
        with client(self.host, self.parts.port or 0, timeout=15) as smtp:
            if self.parts.username:
                smtp.login(unquote(self.parts.username), unquote(self.parts.password or ""))
            smtp.send_message(message)


def configured_notifiers() -> list[Notifier]:
    names = [name.strip() for name in os.environ.get("JOBCTL_NOTIFY", "log").split(",") if name.strip()]
    notifiers: list[Notifier] = []
    for name in names:
        if name == "log":
            notifiers.append(LogNotifier())
        elif name == "webhook":
            notifiers.append(WebhookNotifier(_required("JOBCTL_WEBHOOK_URL", "webhook")))
        elif name == "email":
            recipients = [r.strip() for r in _required("JOBCTL_NOTIFY_EMAIL_TO", "email").split(",")]
            notifiers.append(
                EmailNotifier(
                    _required("JOBCTL_SMTP_URL", "email"),
                    [r for r in recipients if r],
                    os.environ.get("JOBCTL_NOTIFY_EMAIL_FROM") or "jobctl@localhost",
                )
            )
        else:
            raise PermanentError(f"JOBCTL_NOTIFY: unknown notifier {name!r} (known: log, webhook, email)")
    return notifiers


def _required(variable: str, notifier: str) -> str:
    value = os.environ.get(variable, "").strip()
    if not value:
        raise PermanentError(f"the {notifier} notifier needs {variable}")
    return value


@job("notifications", queue="notifications")
def notifications(channel_id: str) -> dict:
    """Detect milestone, view spike, new video and failing-sync alerts; send each one once."""
    notifiers = configured_notifiers()
    progress(10, "loading the latest snapshots")
    with store.engine().connect() as conn:
        snapshots = load_snapshots(conn, channel_id)
        videos = load_videos(conn, channel_id)
        title = channel_title(conn, channel_id)
        status = conn.execute(select(store.sync_status).where(store.sync_status.c.channel_id == channel_id)).first()
    alerts = detect(channel_id, title, snapshots, videos, status)
    progress(40, f"{len(alerts)} alert(s) detected")
    now = store.utcnow()
    with store.engine().begin() as conn:
        store.upsert(
            conn,
            store.alerts,
            [
                {
                    "channel_id": channel_id,
                    "alert_key": alert.key,
                    "kind": alert.kind,
                    "message": alert.message,
                    "detected_at": now,
                }
                for alert in alerts
            ],
            update=False,
        )  # keep when it was first detected
    sent = already_sent = 0
    for alert in alerts:
        for notifier in notifiers:
            if _delivered(alert, notifier.name):
                already_sent += 1
                continue
            notifier.send(alert)
            with store.engine().begin() as conn:
                store.upsert(
                    conn,
                    store.alert_deliveries,
                    [
                        {
                            "channel_id": channel_id,
                            "alert_key": alert.key,
                            "notifier": notifier.name,
                            "delivered_at": store.utcnow(),
                        }
                    ],
                    update=False,
                )
            sent += 1
    progress(100, f"{sent} notification(s) sent")
    return {
        "channel_id": channel_id,
        "alerts": [alert.message for alert in alerts],
        "notifiers": [notifier.name for notifier in notifiers],
        "sent": sent,
        "already_sent": already_sent,
    }


def _delivered(alert: Alert, notifier: str) -> bool:
    deliveries = store.alert_deliveries.c
    with store.engine().connect() as conn:
        return (
            conn.execute(
                select(deliveries.alert_key).where(
                    (deliveries.channel_id == alert.channel_id)
                    & (deliveries.alert_key == alert.key)
                    & (deliveries.notifier == notifier)
                )
            ).first()
            is not None
        )


def detect(channel_id: str, title: str, snapshots: Sequence, videos: Sequence, status: Row | None) -> list[Alert]:
    """Every rule's alerts for the channel, from snapshot rows (oldest first) and video rows."""
    alerts = []
    latest = snapshots[-1]
    if len(snapshots) >= 2:
        previous = snapshots[-2]
        milestone = crossed_milestone(previous.subscribers, latest.subscribers)
        if milestone:
            alerts.append(
                Alert(
                    channel_id,
                    f"milestone:{milestone}",
                    "milestone",
                    f"{title} passed {milestone:,} subscribers ({latest.subscribers:,} on {latest.snapshot_date})",
                )
            )
        gains = [after.views - before.views for before, after in pairwise(snapshots)]
        baseline = gains[:-1][-SPIKE_BASELINE_DAYS:]
        if len(baseline) >= SPIKE_MIN_BASELINE_DAYS and fmean(baseline) > 0:
            ratio = gains[-1] / fmean(baseline)
            if ratio >= SPIKE_FACTOR:
                alerts.append(
                    Alert(
                        channel_id,
                        f"view_spike:{latest.snapshot_date}",
                        "view_spike",
                        f"{title} gained {gains[-1]:,} views on {latest.snapshot_date}, "
                        f"{ratio:.1f}x its recent daily average",
                    )
                )
        alerts.extend(
            Alert(channel_id, f"new_video:{video.video_id}", "new_video", f'{title} published "{video.title}"')
            for video in videos
            if store.as_utc(video.published_at).date() > previous.snapshot_date
        )
    if status is not None and status.consecutive_failures >= FAILING_SYNCS:
        # a nullable column, but _record_failure sets it with a channel's first failed sync
        assert status.failing_since is not None, f"sync_status of {channel_id} is failing without failing_since"
        since = store.as_utc(status.failing_since)
        alerts.append(
            Alert(
                channel_id,
                f"sync_failing:{since.isoformat()}",
                "sync_failing",
                f"syncing {title} failed {status.consecutive_failures} times in a row "
                f"since {since:%Y-%m-%d %H:%M} UTC: {status.last_error}",
            )
        )
    return alerts


def crossed_milestone(before: int, after: int) -> int | None:
    """The highest 1-2-5 step from 1,000 up that lies in (before, after], if any."""
    crossed, magnitude = None, 1000
    while magnitude <= after:
        for step in (magnitude, 2 * magnitude, 5 * magnitude):
            if before < step <= after:
                crossed = step
        magnitude *= 10
    return crossed
