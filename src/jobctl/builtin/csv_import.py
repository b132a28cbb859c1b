"""import: load a CSV of channels or videos into the store, row by row validated.

`import(path, kind)` streams the file in batches of 1,000 rows, with one bulk upsert per
batch. Every row is checked (all columns present, types, ranges, no duplicate key); a bad row
is stored in `import_rejections` with its line number and the reason, and the import goes on.
The import itself is a row of `imports` keyed by (absolute path, kind) whose status goes
processing -> completed, or failed with the reason. A re-run of the same file replaces that
import's rejections and upserts the same rows, so it leaves the store as the first run did.

A missing file, an unknown kind or a header without the expected columns is a PermanentError.

Columns (a header row is required; extra columns are ignored):

- channels: channel_id, title, country, subscribers, views, video_count, snapshot_date
  -> `channels` and one `channel_snapshots` row per line (the figures as of snapshot_date)
- videos: video_id, channel_id, title, published_at, duration_seconds, views, likes, comments
  -> `videos`
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from itertools import islice
from pathlib import Path

from sqlalchemy import ColumnElement, delete, update
from sqlalchemy.engine import Connection

from .. import PermanentError, job, progress
from . import example_data, store

BATCH_SIZE = 1000


def _pattern(regex: str, what: str) -> Callable[[str], str]:
    compiled = re.compile(regex)

    def parse(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return parse


def _text(value: str) -> str:
    if len(value) > 200:
        raise ValueError(f"is {len(value)} characters long, at most 200 allowed")
    return value


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a whole number") from None
    if number < 0:
        raise ValueError(f"{number} is negative")
    return number


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _moment(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 time") from None
    return store.as_utc(parsed)


_channel_id = _pattern(r"UC[A-Za-z0-9_-]{22}", "a channel id (UC + 22 characters)")
_video_id = _pattern(r"[A-Za-z0-9_-]{11}", "a video id (11 characters)")
_country = _pattern(r"[A-Z]{2}", "a two-letter country code")


@dataclass(frozen=True)
class ImportKind:
    key: str
    columns: dict[str, Callable[[str], object]]
    write: Callable[[Connection, list[dict]], None]
    check: Callable[[dict], str | None] = lambda row: None


def _write_channels(conn: Connection, rows: list[dict]) -> None:
    now = store.utcnow()
    store.upsert(
        conn,
        store.channels,
        [
            {
                "channel_id": r["channel_id"],
                "title": r["title"],
                "country": r["country"],
                "source": "import",
                "updated_at": now,
            }
            for r in rows
        ],
    )
    store.upsert(
        conn,
        store.channel_snapshots,
        [
            {
                "channel_id": r["channel_id"],
                "snapshot_date": r["snapshot_date"],
                "subscribers": r["subscribers"],
                "views": r["views"],
                "video_count": r["video_count"],
                "captured_at": datetime.combine(r["snapshot_date"], time(), UTC),
            }
            for r in rows
        ],
    )


def _write_videos(conn: Connection, rows: list[dict]) -> None:
    now = store.utcnow()
    store.upsert(conn, store.videos, [{**row, "updated_at": now} for row in rows])


def _check_video(row: dict) -> str | None:
    if row["likes"] > row["views"]:
        return f"likes ({row['likes']}) exceed views ({row['views']})"
    return None


KINDS = {
    "channels": ImportKind(
        key="channel_id",
        columns={
            "channel_id": _channel_id,
            "title": _text,
            "country": _country,
            "subscribers": _count,
            "views": _count,
            "video_count": _count,
            "snapshot_date": _day,
        },
        write=_write_channels,
    ),
    "videos": ImportKind(
        key="video_id",
        columns={
            "video_id": _video_id,
            "channel_id": _channel_id,
            "title": _text,
            "published_at": _moment,
            "duration_seconds": _count,
            "views": _count,
            "likes": _count,
            "comments": _count,
        },
        write=_write_videos,
        check=_check_video,
    ),
}


@job("import", queue="default", timeout="30m")
def import_csv(path: str, kind: str) -> dict:
    """Import a CSV of channels or videos; bad rows are kept aside with their line and reason."""
    if kind not in KINDS:
        raise PermanentError(f"import kind must be one of {', '.join(KINDS)}, not {kind!r}")
    spec = KINDS[kind]
    file = example_data.resolve(path)
    source = str(file.resolve())
    import_key = (store.imports.c.source_path == source) & (store.imports.c.kind == kind)
    with store.engine().begin() as conn:
        store.upsert(
            conn,
            store.imports,
            [
                {
                    "source_path": source,
                    "kind": kind,
                    "status": "processing",
                    "total_rows": 0,
                    "imported_rows": 0,
                    "rejected_rows": 0,
                    "error": None,
                    "started_at": store.utcnow(),
                    "finished_at": None,
                }
            ],
        )
        conn.execute(
            delete(store.import_rejections).where(
                (store.import_rejections.c.source_path == source) & (store.import_rejections.c.kind == kind)
            )
        )
    try:
        imported, rejected = _import_rows(file, source, kind, spec, import_key)
    except Exception as exc:
        reason = str(exc) if isinstance(exc, PermanentError) else f"{type(exc).__name__}: {exc}"
        with store.engine().begin() as conn:
            conn.execute(
                update(store.imports)
                .where(import_key)
                .values(status="failed", error=reason, finished_at=store.utcnow())
            )
        raise
    with store.engine().begin() as conn:
        conn.execute(update(store.imports).where(import_key).values(status="completed", finished_at=store.utcnow()))
    progress(100, f"imported {imported} rows, rejected {rejected}")
    return {
        "path": path,
        "kind": kind,
        "status": "completed",
        "rows": imported + rejected,
        "imported": imported,
        "rejected": rejected,
    }


def _import_rows(
    path: Path, source: str, kind: str, spec: ImportKind, import_key: ColumnElement[bool]
) -> tuple[int, int]:
    if not path.is_file():
        raise PermanentError(f"import file {path} does not exist")
    with path.open(newline="", encoding="utf-8-sig") as counting:
        total = max(sum(1 for _ in csv.reader(counting)) - 1, 0)
    imported = rejected = 0
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        missing = [column for column in spec.columns if column not in (reader.fieldnames or [])]
        if missing:
            raise PermanentError(
                f"{path} is not a {kind} CSV: header lacks {', '.join(missing)} "
                f"(expected columns: {', '.join(spec.columns)})"
            )
        for batch in _batches(_validated(reader, spec)):
            good = [row for _, row, reason in batch if reason is None]
            bad = [
                {"source_path": source, "kind": kind, "line_number": line, "reason": reason, "row": row}
                for line, row, reason in batch
                if reason is not None
            ]
            imported += len(good)
            rejected += len(bad)
            with store.engine().begin() as conn:
                spec.write(conn, good)
                store.upsert(conn, store.import_rejections, bad)
                conn.execute(
                    update(store.imports)
                    .where(import_key)
                    .values(total_rows=total, imported_rows=imported, rejected_rows=rejected)
                )
            progress(min(99, 100 * (imported + rejected) / max(total, 1)), f"{imported + rejected} of {total} rows")
    return imported, rejected


def _validated(reader: csv.DictReader, spec: ImportKind) -> Iterator[tuple]:
    """(line number, row, None) for a good row (parsed values), (line, raw row, reason) for a bad one."""
    first_seen: dict[str, int] = {}
    for raw in reader:
        line = reader.line_num
        row, reason = _parse(raw, spec)
        if reason is None:
            key = row[spec.key]
            if key in first_seen:
                reason = f"duplicate {spec.key} {key}, first seen on line {first_seen[key]}"
            else:
                first_seen[key] = line
        if reason is None:
            yield line, row, None
        else:
            yield line, {name: value for name, value in raw.items() if name is not None}, reason


def _parse(raw: dict, spec: ImportKind) -> tuple[dict, str | None]:
    if None in raw:  # DictReader files surplus fields under the key None
        return {}, f"has {len(raw) - 1 + len(raw[None])} fields, expected {len(raw) - 1}"
    row, problems = {}, []
    for column, parse in spec.columns.items():
        value = (raw[column] or "").strip()
        if not value:
            problems.append(f"{column} is empty")
            continue
        try:
            row[column] = parse(value)
        except ValueError as exc:
            problems.append(f"{column}: {exc}")
    if not problems and (problem := spec.check(row)):
        problems.append(problem)
    return row, "; ".join(problems) or None


def _batches(rows: Iterator[tuple]) -> Iterator[list[tuple]]:
    while batch := list(islice(rows, BATCH_SIZE)):
        yield batch
