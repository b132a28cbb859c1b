from datetime import UTC, date, datetime

from sqlalchemy import inspect, select, text

from jobctl.builtin import store


def test_tables_are_created_on_first_use(store_backend):
    tables = set(inspect(store.engine()).get_table_names())
    assert {"channels", "channel_snapshots", "videos", "imports", "documents", "chunks"} <= tables


def test_sqlite_store_lives_under_dot_jobctl_in_wal_mode(workdir):
    assert store.database_url() == f"sqlite:///{workdir}/.jobctl/jobctl.db"
    with store.engine().connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    assert (workdir / ".jobctl" / "jobctl.db").is_file()


def test_upsert_twice_leaves_one_row_with_the_latest_values(store_backend):
    row = {
        "channel_id": "UCx",
        "snapshot_date": date(2025, 5, 1),
        "subscribers": 10,
        "views": 100,
        "video_count": 1,
        "captured_at": datetime(2025, 5, 1, 6, tzinfo=UTC),
    }
    with store.engine().begin() as conn:
        store.upsert(conn, store.channel_snapshots, [row])
        store.upsert(conn, store.channel_snapshots, [{**row, "subscribers": 11}])
    with store.engine().connect() as conn:
        rows = conn.execute(select(store.channel_snapshots)).all()
    assert [(r.subscribers, store.as_utc(r.captured_at)) for r in rows] == [(11, row["captured_at"])]


def test_postgres_urls_use_psycopg_3_and_passwords_are_masked(monkeypatch):
    monkeypatch.setenv("JOBCTL_DATABASE_URL", "postgresql://app:s3cret@db.internal:5432/jobs")
    assert store.database_url() == "postgresql+psycopg://app:s3cret@db.internal:5432/jobs"
    assert store.masked_database_url() == "postgresql+psycopg://app:***@db.internal:5432/jobs"
