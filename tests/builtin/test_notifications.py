import logging
from email import message_from_bytes, policy

import pytest
from sqlalchemy import func, select

from jobctl import PermanentError
from jobctl.builtin import store
from jobctl.builtin.channels import channel_sync
from jobctl.builtin.http import TransientHTTPError
from jobctl.builtin.notifications import crossed_milestone, notifications

EXPECTED_ALERTS = [
    "Small Test Kitchen passed 1,000 subscribers (1,010 on 2025-05-29)",
    "Small Test Kitchen gained 5,000 views on 2025-05-29, 5.0x its recent daily average",
    'Small Test Kitchen published "Pasta night"',
]


def deliveries() -> list[tuple[str, str]]:
    with store.engine().connect() as conn:
        return conn.execute(
            select(store.alert_deliveries.c.alert_key, store.alert_deliveries.c.notifier).order_by(
                store.alert_deliveries.c.alert_key
            )
        ).all()


def test_log_alerts_are_sent_once_across_reruns(synced_channel, caplog, run_job):
    with caplog.at_level(logging.WARNING, logger="jobctl.alerts"):
        first = run_job(notifications, synced_channel)
        second = notifications(synced_channel)

    assert first["alerts"] == EXPECTED_ALERTS
    assert (first["sent"], first["already_sent"]) == (3, 0)
    assert (second["sent"], second["already_sent"]) == (0, 3)
    assert [record.getMessage().split("] ", 1)[1] for record in caplog.records] == EXPECTED_ALERTS
    assert [key for key, _ in deliveries()] == ["milestone:1000", "new_video:vid00000006", "view_spike:2025-05-29"]
    assert run_job.progress.percents == [10, 40, 100]


def test_webhook_failure_is_retried_and_each_alert_posted_exactly_once(synced_channel, fake_server, monkeypatch):
    monkeypatch.setenv("JOBCTL_NOTIFY", "log,webhook")
    monkeypatch.setenv("JOBCTL_WEBHOOK_URL", f"{fake_server.url}/webhook")
    fake_server.fail_next.append(("/webhook", 503))

    # the first alert is logged, then its POST answers 503: a retryable failure
    with pytest.raises(TransientHTTPError, match="HTTP 503"):
        notifications(synced_channel)
    assert deliveries() == [("milestone:1000", "log")]

    retry = notifications(synced_channel)  # what the runner does next
    assert (retry["sent"], retry["already_sent"]) == (5, 1)
    assert [hook["message"] for hook in fake_server.webhooks] == EXPECTED_ALERTS
    assert fake_server.webhooks[0] == {
        "channel_id": synced_channel,
        "key": "milestone:1000",
        "kind": "milestone",
        "message": EXPECTED_ALERTS[0],
    }
    notifications(synced_channel)
    assert len(fake_server.webhooks) == 3


def test_email_alerts_go_through_smtp_once(synced_channel, smtp_server, monkeypatch):
    monkeypatch.setenv("JOBCTL_NOTIFY", "email")
    monkeypatch.setenv("JOBCTL_SMTP_URL", smtp_server.url)
    monkeypatch.setenv("JOBCTL_NOTIFY_EMAIL_TO", "ops@example.com, owner@example.com")
    monkeypatch.setenv("JOBCTL_NOTIFY_EMAIL_FROM", "alerts@example.com")

    notifications(synced_channel)
    notifications(synced_channel)

    assert len(smtp_server.messages) == 3
    first = smtp_server.messages[0]
    assert (first.mail_from, first.rcpt_tos) == ("alerts@example.com", ["ops@example.com", "owner@example.com"])
    assert (
        message_from_bytes(first.content, policy=policy.default)["Subject"].strip() == f"[jobctl] {EXPECTED_ALERTS[0]}"
    )


def test_a_sync_failing_three_times_in_a_row_alerts_once(synced_channel, monkeypatch, tmp_path):
    notifications(synced_channel)  # the data alerts, out of the way
    monkeypatch.setenv("JOBCTL_CHANNELS_DIR", str(tmp_path / "gone"))
    for _ in range(3):
        with pytest.raises(PermanentError):
            channel_sync(synced_channel)

    result = notifications(synced_channel)
    assert result["sent"] == 1
    assert result["alerts"][-1].startswith("syncing Small Test Kitchen failed 3 times in a row since ")
    assert notifications(synced_channel)["sent"] == 0
    with store.engine().connect() as conn:
        assert conn.execute(select(func.count()).select_from(store.alerts)).scalar() == 4


def test_misconfigured_notifiers_are_permanent(synced_channel, monkeypatch):
    monkeypatch.setenv("JOBCTL_NOTIFY", "webhook")
    with pytest.raises(PermanentError, match="needs JOBCTL_WEBHOOK_URL"):
        notifications(synced_channel)
    monkeypatch.setenv("JOBCTL_NOTIFY", "pager")
    with pytest.raises(PermanentError, match="unknown notifier 'pager'"):
        notifications(synced_channel)


@pytest.mark.parametrize(
    "before, after, crossed",
    [
        (985, 1010, 1000),
        (1900, 2100, 2000),
        (4000, 12000, 10000),
        (99_000, 99_999, None),
        (1000, 1001, None),
    ],
)
def test_milestones(before, after, crossed):
    assert crossed_milestone(before, after) == crossed
