import csv

import pytest
from sqlalchemy import select

from jobctl import PermanentError
from jobctl.builtin import store
from jobctl.builtin.csv_import import import_csv

from .conftest import EXAMPLES

HEADER = "video_id,channel_id,title,published_at,duration_seconds,views,likes,comments\n"
CHANNEL = "UCsmallTestChannel000001"
GOOD = [
    f"aaaaaaaaaa1,{CHANNEL},First video,2025-05-01T10:00:00Z,300,1000,50,5\n",
    f'aaaaaaaaaa2,{CHANNEL},"Second, with a comma",2025-05-02T10:00:00+02:00,600,2000,80,10\n',
    f"aaaaaaaaaa3,{CHANNEL},Third video,2025-05-03,60,0,0,0\n",
]
BAD = [
    f"bad,{CHANNEL},Short id,2025-05-01T10:00:00Z,300,1000,50,5\n",  # line 5
    f"aaaaaaaaaa4,{CHANNEL},Likes above views,2025-05-01T10:00:00Z,300,100,500,5\n",  # line 6
    f"aaaaaaaaaa5,{CHANNEL},,yesterday,-3,1k,1,1\n",  # line 7
    f"aaaaaaaaaa1,{CHANNEL},First video again,2025-05-01T10:00:00Z,300,1000,50,5\n",  # line 8
    f"aaaaaaaaaa6,{CHANNEL},Too many,2025-05-01T10:00:00Z,300,1000,50,5,extra\n",  # line 9
]


def rejections():
    with store.engine().connect() as conn:
        return conn.execute(
            select(store.import_rejections.c.line_number, store.import_rejections.c.reason).order_by(
                store.import_rejections.c.line_number
            )
        ).all()


def import_status(kind):
    with store.engine().connect() as conn:
        return conn.execute(select(store.imports).where(store.imports.c.kind == kind)).one()


def test_bad_rows_are_kept_aside_with_line_and_reason(store_backend, workdir, run_job):
    (workdir / "videos.csv").write_text(HEADER + "".join(GOOD + BAD))

    result = run_job(import_csv, "videos.csv", "videos")

    assert result == {
        "path": "videos.csv",
        "kind": "videos",
        "status": "completed",
        "rows": 8,
        "imported": 3,
        "rejected": 5,
    }
    assert rejections() == [
        (5, "video_id: 'bad' is not a video id (11 characters)"),
        (6, "likes (500) exceed views (100)"),
        (
            7,
            (
                "title is empty; published_at: 'yesterday' is not an ISO 8601 time; "
                "duration_seconds: -3 is negative; views: '1k' is not a whole number"
            ),
        ),
        (8, "duplicate video_id aaaaaaaaaa1, first seen on line 2"),
        (9, "has 9 fields, expected 8"),
    ]
    with store.engine().connect() as conn:
        videos = conn.execute(select(store.videos).order_by(store.videos.c.video_id)).all()
    assert [(v.title, v.views, store.as_utc(v.published_at).isoformat()) for v in videos] == [
        ("First video", 1000, "2025-05-01T10:00:00+00:00"),
        ("Second, with a comma", 2000, "2025-05-02T08:00:00+00:00"),
        ("Third video", 0, "2025-05-03T00:00:00+00:00"),
    ]
    status = import_status("videos")
    assert (status.status, status.total_rows, status.imported_rows, status.rejected_rows, status.error) == (
        "completed",
        8,
        3,
        5,
        None,
    )
    assert run_job.progress.percents == [99, 100]


def test_a_rerun_leaves_the_same_rows(store_backend, workdir):
    (workdir / "videos.csv").write_text(HEADER + "".join(GOOD + BAD))
    import_csv("videos.csv", "videos")
    import_csv("videos.csv", "videos")
    with store.engine().connect() as conn:
        assert len(conn.execute(select(store.videos)).all()) == 3
        assert len(conn.execute(select(store.imports)).all()) == 1
    assert len(rejections()) == 5


def test_batches_of_a_thousand_rows_report_progress(store_backend, workdir, run_job):
    with (workdir / "channels.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["channel_id", "title", "country", "subscribers", "views", "video_count", "snapshot_date"])
        for n in range(2500):
            writer.writerow([f"UC{n:022d}", f"Channel {n}", "US", n, n * 100, 10, "2025-06-01"])

    result = run_job(import_csv, "channels.csv", "channels")

    assert (result["imported"], result["rejected"]) == (2500, 0)
    assert run_job.progress.percents == [40, 80, 99, 100]
    with store.engine().connect() as conn:
        assert len(conn.execute(select(store.channel_snapshots)).all()) == 2500


def test_wrong_header_fails_permanently_and_is_recorded(store_backend, workdir):
    (workdir / "videos.csv").write_text("id,name\n1,x\n")
    with pytest.raises(PermanentError, match="is not a videos CSV: header lacks video_id, channel_id"):
        import_csv("videos.csv", "videos")
    status = import_status("videos")
    assert status.status == "failed" and "header lacks video_id" in status.error


def test_missing_file_and_unknown_kind_are_permanent(store_backend):
    with pytest.raises(PermanentError, match=r"import file nowhere\.csv does not exist"):
        import_csv("nowhere.csv", "channels")
    assert import_status("channels").status == "failed"
    with pytest.raises(PermanentError, match="import kind must be one of channels, videos"):
        import_csv("nowhere.csv", "playlists")


def test_shipped_examples(store_backend):
    channels = import_csv(str(EXAMPLES / "imports" / "channels.csv"), "channels")
    videos = import_csv(str(EXAMPLES / "imports" / "videos.csv"), "videos")
    assert (channels["imported"], channels["rejected"]) == (28, 6)
    assert (videos["imported"], videos["rejected"]) == (40, 3)
