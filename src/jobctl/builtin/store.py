"""The relational store the built-in jobs write to: one SQLAlchemy Core schema, two backends.

- SQLite at `.jobctl/jobctl.db` under the current directory by default. It runs in WAL mode
  (readers never block the writer) with a 30 s busy timeout, and every transaction starts with
  `BEGIN IMMEDIATE`, so that many worker processes writing at once queue up for the write
  lock instead of failing with "database is locked".
- PostgreSQL when `JOBCTL_DATABASE_URL` is set, e.g. `postgresql://postgres@127.0.0.1:5432/jobctl`
  (a plain `postgresql://` URL is taken to mean the psycopg 3 driver).

Tables are created on first use. Jobs stay idempotent by writing through `upsert()` on
natural keys (a channel id, a channel and a day, a file path and a line number...).
Timestamps are stored in UTC; SQLite hands them back naive, so read them through `as_utc()`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    make_url,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ..config.settings import DEFAULT_SOURCE, env_source

DATABASE_URL_ENV = "JOBCTL_DATABASE_URL"
DEFAULT_SQLITE_PATH = Path(".jobctl") / "jobctl.db"

metadata = MetaData()

Timestamp = DateTime(timezone=True)

channels = Table(
    "channels",
    metadata,
    Column("channel_id", String, primary_key=True),
    Column("title", String, nullable=False),
    Column("description", Text),
    Column("custom_url", String),
    Column("country", String),
    Column("published_at", Timestamp),
    Column("source", String, nullable=False),  # "exports", "youtube" or "import"
    Column("updated_at", Timestamp, nullable=False),
)

# One row per channel and day: a sync later the same day refreshes that day's figures.
channel_snapshots = Table(
    "channel_snapshots",
    metadata,
    Column("channel_id", String, primary_key=True),
    Column("snapshot_date", Date, primary_key=True),
    Column("subscribers", BigInteger, nullable=False),
    Column("views", BigInteger, nullable=False),
    Column("video_count", Integer, nullable=False),
    Column("captured_at", Timestamp, nullable=False),
)

videos = Table(
    "videos",
    metadata,
    Column("video_id", String, primary_key=True),
    Column("channel_id", String, nullable=False, index=True),
    Column("title", String, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("tags", JSON, nullable=False, default=list),
    Column("published_at", Timestamp, nullable=False),
    Column("duration_seconds", Integer),
    Column("views", BigInteger, nullable=False),
    Column("likes", BigInteger, nullable=False),
    Column("comments", BigInteger, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

# The outcome of the latest sync attempts, for the "sync keeps failing" alert.
sync_status = Table(
    "sync_status",
    metadata,
    Column("channel_id", String, primary_key=True),
    Column("last_attempt_at", Timestamp, nullable=False),
    Column("last_success_at", Timestamp),
    Column("consecutive_failures", Integer, nullable=False),
    Column("failing_since", Timestamp),
    Column("last_error", Text),
)

analytics_reports = Table(
    "analytics_reports",
    metadata,
    Column("channel_id", String, primary_key=True),
    Column("as_of", Date, nullable=False),
    Column("subscribers", BigInteger, nullable=False),
    Column("views", BigInteger, nullable=False),
    Column("subscriber_growth_7d", BigInteger),
    Column("subscriber_growth_28d", BigInteger),
    Column("view_growth_7d", BigInteger),
    Column("view_growth_28d", BigInteger),
    Column("engagement_rate", Float),
    Column("uploads_per_week", Float, nullable=False),
    Column("report", JSON, nullable=False),
    Column("computed_at", Timestamp, nullable=False),
)

recommendations = Table(
    "recommendations",
    metadata,
    Column("channel_id", String, primary_key=True),
    Column("kind", String, primary_key=True),  # "weekday", "hour", "keyword", "similar_video"
    Column("rank", Integer, primary_key=True),
    Column("item", String, nullable=False),
    Column("score", Float, nullable=False),
    Column("detail", JSON, nullable=False),
    Column("computed_at", Timestamp, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("channel_id", String, primary_key=True),
    Column("alert_key", String, primary_key=True),  # e.g. "milestone:100000", "new_video:<id>"
    Column("kind", String, nullable=False),
    Column("message", Text, nullable=False),
    Column("detected_at", Timestamp, nullable=False),
)

alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("channel_id", String, primary_key=True),
    Column("alert_key", String, primary_key=True),
    Column("notifier", String, primary_key=True),
    Column("delivered_at", Timestamp, nullable=False),
)

charts = Table(
    "charts",
    metadata,
    Column("channel_id", String, primary_key=True),
    Column("path", String, nullable=False),
    Column("content_hash", String, nullable=False),
    Column("rendered_at", Timestamp, nullable=False),
)

imports = Table(
    "imports",
    metadata,
    Column("source_path", String, primary_key=True),
    Column("kind", String, primary_key=True),
    Column("status", String, nullable=False),  # "processing", "completed" or "failed"
    Column("total_rows", Integer, nullable=False, default=0),
    Column("imported_rows", Integer, nullable=False, default=0),
    Column("rejected_rows", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("started_at", Timestamp, nullable=False),
    Column("finished_at", Timestamp),
)

import_rejections = Table(
    "import_rejections",
    metadata,
    Column("source_path", String, primary_key=True),
    Column("kind", String, primary_key=True),
    Column("line_number", Integer, primary_key=True),
    Column("reason", Text, nullable=False),
    Column("row", JSON, nullable=False),
)

documents = Table(
    "documents",
    metadata,
    Column("document_id", String, primary_key=True),
    Column("collection", String, nullable=False, index=True),
    Column("path", String, nullable=False),
    Column("title", String),
    Column("format", String, nullable=False),
    Column("status", String, nullable=False),  # "processing", "completed" or "failed"
    Column("chunk_count", Integer, nullable=False, default=0),
    Column("strategy", String, nullable=False),
    Column("chunk_size", Integer, nullable=False),
    Column("chunk_overlap", Integer, nullable=False),
    Column("error", Text),
    Column("registered_at", Timestamp, nullable=False),
    Column("completed_at", Timestamp),
)

chunks = Table(
    "chunks",
    metadata,
    Column("document_id", String, primary_key=True),
    Column("chunk_index", Integer, primary_key=True),
    Column("collection", String, nullable=False, index=True),
    Column("text", Text, nullable=False),
    Column("embedding", LargeBinary, nullable=False),  # float32 values, see builtin/text.py
)

_engines: dict[tuple[str, int], Engine] = {}


def database_url() -> str:
    configured = os.environ.get(DATABASE_URL_ENV, "").strip()
    if not configured:
        return f"sqlite:///{(Path.cwd() / DEFAULT_SQLITE_PATH).as_posix()}"
    url = make_url(configured)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def masked_database_url() -> str:
    """The store's URL as it is safe to print: any password replaced by ***."""
    return make_url(database_url()).render_as_string(hide_password=True)


def database_url_row() -> dict[str, str]:
    """`jobctl config`'s database_url row: the masked URL and where it came from."""
    given = os.environ.get(DATABASE_URL_ENV, "").strip()
    return {"value": masked_database_url(), "source": env_source(DATABASE_URL_ENV) if given else DEFAULT_SOURCE}


def engine() -> Engine:
    """The engine for the configured store, its tables created on first use.

    Cached per URL and per process: a forked worker must not share its parent's connections.
    """
    url = database_url()
    key = (url, os.getpid())
    if key not in _engines:
        _engines[key] = _create(url)
    return _engines[key]


def dispose_engines() -> None:
    """Close every engine this process opened (tests switch stores between runs)."""
    for created in _engines.values():
        created.dispose()
    _engines.clear()


def _create(url: str) -> Engine:
    if url.startswith("sqlite"):
        Path(make_url(url).database or "").parent.mkdir(parents=True, exist_ok=True)
        created = create_engine(url)
        event.listen(created, "connect", _configure_sqlite)
        event.listen(created, "begin", _begin_immediate)
    else:
        created = create_engine(url, pool_pre_ping=True)
    with created.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Workers starting together would race on CREATE TABLE; one creates, the rest wait.
            conn.execute(text("SELECT pg_advisory_xact_lock(7236010)"))
        metadata.create_all(conn)
    return created


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself rather than the driver's deferred BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_immediate(conn: Connection) -> None:
    # A deferred transaction that later writes fails at once with SQLITE_BUSY when another
    # process holds the write lock; taking the lock up front makes it wait for busy_timeout.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def upsert(
    conn: Connection,
    table: Table,
    rows: Iterable[Mapping],
    *,
    update: bool = True,
) -> int:
    """Insert rows, or on a primary-key clash update the existing row (or keep it: update=False).

    Returns how many rows were given. Both backends speak ON CONFLICT; SQLAlchemy builds it.
    """
    rows = [dict(row) for row in rows]
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    keys = [column.name for column in table.primary_key.columns]
    changing = [name for name in rows[0] if name not in keys]
    if update and changing:
        statement = statement.on_conflict_do_update(
            index_elements=keys,
            set_={name: statement.excluded[name] for name in changing},
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=keys)
    conn.execute(statement, rows)
    return len(rows)


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """A stored timestamp as an aware UTC datetime, whichever backend returned it."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
