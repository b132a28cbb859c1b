from datetime import date

import pytest
from sqlalchemy import select

from jobctl import PermanentError
from jobctl.builtin import store
from jobctl.builtin.analytics import analytics
from jobctl.builtin.channels import NoSnapshotsYet


def test_growth_engagement_and_cadence_of_the_small_channel(synced_channel, run_job):
    result = run_job(analytics, synced_channel)

    assert result["as_of"] == "2025-05-29"
    assert (result["subscribers"], result["views"]) == (1010, 82000)
    # last day: 985 -> 1,010 subscribers and 77,000 -> 82,000 views
    assert (result["subscribers_per_day"], result["views_per_day"]) == (25, 5000)
    # 7 days back is 05-22 (955 subscribers, 71,000 views); 28 days back is 05-01 (850, 50,000)
    assert result["subscriber_growth"] == {"7d": 55, "28d": 160}
    assert result["view_growth"] == {"7d": 11000, "28d": 32000}
    # (600 + 400 + 250 + 120 + 45 + 10) interactions / 30,000 views
    assert result["engagement_rate"] == 0.0475
    assert [(v["title"], v["engagement_rate"]) for v in result["top_videos"][:3]] == [
        ("Sourdough basics", 0.05),
        ("Sourdough starter tips", 0.05),
        ("Knife skills for beginners", 0.05),
    ]
    # six uploads in the 28 days, 7, 3, 2, 5 and 7 days apart, the last on the last day
    assert result["cadence"] == {
        "uploads_28d": 6,
        "uploads_per_week": 1.5,
        "mean_days_between_uploads": 4.8,
        "days_since_last_upload": 0,
    }
    assert run_job.progress.percents == [10, 40, 80, 100]


def test_the_report_is_stored_once_per_channel(synced_channel):
    analytics(synced_channel)
    analytics(synced_channel)
    with store.engine().connect() as conn:
        reports = conn.execute(select(store.analytics_reports)).all()
    assert len(reports) == 1
    report = reports[0]
    assert (report.subscriber_growth_28d, report.view_growth_7d, report.uploads_per_week) == (160, 11000, 1.5)
    assert len(report.report["daily_growth"]) == 28
    assert report.report["daily_growth"][0] == {"date": "2025-05-02", "subscribers": 5, "views": 1000}


def test_a_short_history_has_no_window_growth_yet(synced_channel):
    with store.engine().begin() as conn:
        conn.execute(
            store.channel_snapshots.delete().where(store.channel_snapshots.c.snapshot_date < date(2025, 5, 25))
        )
    result = analytics(synced_channel)
    assert result["subscriber_growth"] == {"7d": None, "28d": None}


def test_no_snapshots_yet_is_retryable_not_permanent(store_backend):
    with pytest.raises(NoSnapshotsYet, match="no snapshots yet for channel UCnotsynced") as failure:
        analytics("UCnotsynced")
    assert not isinstance(failure.value, PermanentError)
