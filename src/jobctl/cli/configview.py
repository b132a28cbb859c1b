"""What `jobctl config` shows (and `scheduler --list --json` of each entry): the settings in
effect, each value with where it came from, queue settings as an operator writes them.
Imported by those commands only: it loads PyYAML and redis-py."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from ..config import yamlfile
from ..config.queues import DURATION_SETTINGS, QueueConfig, QueuesConfig, RecurringEntry, WorkerRange
from ..config.settings import DEFAULT_SOURCE, Settings, package_rows
from ..options.durations import format_exact
from ..store.connection import embedded_socket, mask_url


def setting_text(name: str, value: Any) -> str:
    """A queue setting as an operator writes it: 5m, 30d, off, [10s, 1m]."""
    if isinstance(value, WorkerRange):  # before the tuples: written 2..10
        return str(value)
    if value is None or value is False:
        return "off"
    if value is True:
        return "on"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(setting_text(name, item) for item in value) + "]"
    if name in DURATION_SETTINGS and isinstance(value, (int, float)):
        return format_exact(value)
    return str(value)


def entry_fields(entry: RecurringEntry) -> dict[str, Any]:
    """A recurring entry as `config --json` and `scheduler --list --json` show it."""
    return {
        "name": entry.name,
        "job": entry.job,
        "queue": entry.queue,
        "schedule": entry.schedule.text,
        "timezone": entry.timezone,
        "enabled": entry.enabled,
    }


def effective(settings: Settings) -> dict[str, Any]:
    """The effective configuration, each value with where it came from; secrets masked.

    Validates queue.yml and recurring.yml on the way (a bad file raises ConfigError) but
    never connects to Redis or starts the embedded one."""
    if settings.redis_url:
        redis_value = mask_url(settings.redis_url)
    else:
        redis_value = f"unix://{embedded_socket()} (embedded Redis, started on demand)"
    recurring_exists = Path(settings.recurring_path).exists()
    entries = settings.recurring()
    return {
        "redis_url": {"value": redis_value, "source": settings.source("redis_url")},
        "config": {"value": str(Path(settings.config_path).resolve()), "source": settings.source("config_path")},
        "recurring": {
            "value": str(Path(settings.recurring_path).resolve()),
            "source": settings.source("recurring_path"),
            "exists": recurring_exists,
        },
        "jobs": {"value": settings.job_modules, "source": settings.source("job_modules")},
        **package_rows.read(),
        "queues": queue_settings(settings.queues),
        "recurring_entries": [entry_fields(e) for e in entries],
    }


def queue_settings(config: QueuesConfig) -> list[dict[str, Any]]:
    """Every queue's settings, each with its value, its text and where it was written (queue.yml
    validated: its raw document is known to be well-formed)."""
    # the settings queue.yml can set: every QueueConfig field but the queue's identity
    names = [f.name for f in fields(QueueConfig) if f.name not in ("name", "priority")]
    document = yamlfile.read(config.path, None)
    defaults = document.get("defaults") or {}
    where = Path(config.path).name
    rows: list[dict[str, Any]] = []
    for queue in config.queues.values():
        own = document.get(queue.name) or {}
        settings: dict[str, dict[str, Any]] = {}
        for name in names:
            written = own if name in own else defaults if name in defaults else None
            if written is own:
                source = f"file {where}: queue {queue.name!r}"
            elif written is defaults:
                source = f"file {where}: defaults"
            else:
                source = DEFAULT_SOURCE
            value = getattr(queue, name)
            text = setting_text(name, written[name] if written is not None else value)
            if isinstance(value, WorkerRange):
                value = str(value)  # as written: 2..10
            settings[name] = {
                "value": list(value) if isinstance(value, tuple) else value,
                "text": text,
                "source": source,
            }
        rows.append({"name": queue.name, "priority": queue.priority, "settings": settings})
    return rows
