"""When recurring jobs are due: five-field cron or "every N unit" schedules, pure time logic.

Every due time is a deterministic function of (schedule text, timezone): two scheduler processes
that claim (entry, due time) in Redis compute the very same timestamps without sharing state.
Due times are returned as aware UTC datetimes with whole seconds.

Cron is evaluated on the wall clock of the entry's IANA timezone with cronsim, which follows
Debian/Vixie cron across daylight-saving changes (croniter runs a fixed-time job twice when the
clocks go back, so it is not used here):

- A fixed time (a minute and an hour that do not start with ``*``, e.g. ``30 2 * * *``) runs once a
  day. When it does not exist (spring forward, 02:00 -> 03:00) it runs at the first valid instant
  after the gap (03:00); when it occurs twice (fall back) it runs at the first occurrence only.
- An expression with ``*`` in the minute or hour field (``0 * * * *``, ``*/15 * * * *``) follows
  real elapsed time: ``0 * * * *`` runs once every real hour, so on fall-back it runs at both
  02:00s (Europe/Paris: 02:00 CEST and 02:00 CET, an hour apart), and on spring-forward the
  missing 02:00 is not added next to 03:00. No real hour is skipped and no instant is doubled. Like Vixie cron, a wildcard minute under a fixed hour
  (``*/15 2 * * *``) has no run on the day that hour does not exist and runs through both
  copies of it on the day it repeats.

Intervals are anchored so that they need no stored "last run":

- ``every N seconds|minutes|hours`` is absolute elapsed time: due at the multiples of the interval
  since the Unix epoch (1970-01-01T00:00Z), whatever the timezone and DST.
- ``every N days`` is calendar days in the timezone: due at local midnight of the days whose
  number since 1970-01-01 (local date) is a multiple of N. A midnight that does not exist runs at
  the first valid instant after it; a midnight that occurs twice runs at the first occurrence.
"""

import itertools
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

EXPECTED = "a five-field cron expression like '*/15 * * * *' or 'every N seconds|minutes|hours|days'"

_ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

# (name, lowest, highest) of the five cron fields, in order
_CRON_FIELDS = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
]

_INTERVAL = re.compile(r"every\s+(?:(\d+)\s*)?([a-z]+)", re.IGNORECASE)
_UNITS = {
    "second": ("s", "sec", "secs", "second", "seconds"),
    "minute": ("m", "min", "mins", "minute", "minutes"),
    "hour": ("h", "hr", "hrs", "hour", "hours"),
    "day": ("d", "day", "days"),
}
_UNIT_BY_SPELLING = {spelling: unit for unit, spellings in _UNITS.items() for spelling in spellings}
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600}
MAX_INTERVAL_SECONDS = 100 * 365 * 86400


class Schedule:
    """A parsed schedule; build one with parse_schedule()."""

    def __init__(self, text: str, timezone: str, zone: ZoneInfo):
        self.text = text
        self.timezone = timezone
        self._zone = zone

    def next_after(self, moment: datetime) -> datetime:
        """The first due time strictly after `moment` (aware), as an aware UTC datetime."""
        due = next(self._due_times(_aware(moment, "moment")), None)
        if due is None:
            raise ValueError(f"schedule {self.text!r} has no due time after {moment.isoformat()}")
        return due

    def due_between(self, after: datetime, until: datetime, limit: int = 1000) -> list[datetime]:
        """Every due time t with after < t <= until, oldest first, at most `limit` of them."""
        until = _aware(until, "until")
        due_times = itertools.takewhile(lambda due: due <= until, self._due_times(_aware(after, "after")))
        return list(itertools.islice(due_times, limit))

    def next_runs(self, moment: datetime, count: int = 3) -> list[datetime]:
        """The next `count` due times strictly after `moment`."""
        return list(itertools.islice(self._due_times(_aware(moment, "moment")), count))

    def describe(self) -> str:
        raise NotImplementedError

    def _due_times(self, after: datetime) -> Iterator[datetime]:
        """Due times strictly after `after`, strictly increasing, in UTC."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.text!r}, timezone={self.timezone!r})"


class CronSchedule(Schedule):
    def __init__(self, text: str, timezone: str, zone: ZoneInfo, expression: str):
        super().__init__(text, timezone, zone)
        self.expression = expression

    def describe(self) -> str:
        return f"cron {self.text.strip()} ({self.timezone})"

    def _due_times(self, after: datetime) -> Iterator[datetime]:
        latest = after
        for local_due in CronSim(self.expression, after.astimezone(self._zone)):
            due = local_due.astimezone(UTC)
            # cronsim walks fixed times on the wall clock, so started inside a repeated (fall-back)
            # hour it can return that hour's first occurrence, which is already in the past
            if due > latest:
                latest = due
                yield due


class IntervalSchedule(Schedule):
    """every N seconds/minutes/hours: the multiples of the interval since the Unix epoch."""

    def __init__(self, text: str, timezone: str, zone: ZoneInfo, count: int, unit: str):
        super().__init__(text, timezone, zone)
        self.count = count
        self.unit = unit
        self.interval = timedelta(seconds=count * _UNIT_SECONDS[unit])

    def describe(self) -> str:
        return _every(self.count, self.unit)

    def _due_times(self, after: datetime) -> Iterator[datetime]:
        # timedelta // timedelta is exact integer division, so microseconds cannot skew it
        due = EPOCH + ((after - EPOCH) // self.interval + 1) * self.interval
        while True:
            yield due
            due += self.interval


class DayIntervalSchedule(Schedule):
    """every N days: local midnight of every Nth local date counted from 1970-01-01."""

    def __init__(self, text: str, timezone: str, zone: ZoneInfo, days: int):
        super().__init__(text, timezone, zone)
        self.days = days

    def describe(self) -> str:
        return f"{_every(self.days, 'day')} at midnight ({self.timezone})"

    def _due_times(self, after: datetime) -> Iterator[datetime]:
        today = after.astimezone(self._zone).date()
        day = today + timedelta(days=-(today - EPOCH.date()).days % self.days)
        while True:
            due = _first_instant_at(day, self._zone)
            if due > after:
                yield due
            day += timedelta(days=self.days)


def parse_schedule(text: str, timezone: str = "UTC") -> Schedule:
    """Parse a five-field cron expression (or an @hourly/@daily/@weekly/@monthly/@yearly alias) or
    an interval ("every 30 seconds", "every 2 hours", "every minute", "every 1 day"; units
    second/minute/hour/day, plural, or s/m/h/d) evaluated in the IANA `timezone`.

    Raises ValueError with a one-line message saying what is wrong and what was expected.
    """
    zone = _zone(timezone)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"empty schedule {text!r}: expected {EXPECTED}")
    written = text.strip()
    if written.lower().startswith("every"):
        return _parse_interval(text, timezone, zone)
    if written.startswith("@"):
        if written.lower() not in _ALIASES:
            raise ValueError(f"unknown cron alias {written!r}: expected one of {', '.join(_ALIASES)}")
        return CronSchedule(text, timezone, zone, _ALIASES[written.lower()])
    _check_cron(written)
    return CronSchedule(text, timezone, zone, written)


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown timezone {timezone!r}: expected an IANA name like 'Europe/Paris' or 'UTC'") from None


def _parse_interval(text: str, timezone: str, zone: ZoneInfo) -> Schedule:
    match = _INTERVAL.fullmatch(text.strip())
    if not match:
        raise ValueError(
            f"bad interval {text!r}: expected 'every N seconds|minutes|hours|days', e.g. 'every 30 seconds'"
        )
    count_text, spelling = match.groups()
    unit = _UNIT_BY_SPELLING.get(spelling.lower())
    if unit is None:
        raise ValueError(f"bad interval {text!r}: unknown unit {spelling!r}, expected seconds, minutes, hours or days")
    count = int(count_text or 1)
    if count < 1:
        raise ValueError(f"bad interval {text!r}: expected a count of at least 1")
    if count * _UNIT_SECONDS.get(unit, 86400) > MAX_INTERVAL_SECONDS:  # beyond, date arithmetic overflows
        raise ValueError(f"bad interval {text!r}: expected at most 100 years")
    if unit == "day":
        return DayIntervalSchedule(text, timezone, zone, count)
    return IntervalSchedule(text, timezone, zone, count, unit)


def _check_cron(expression: str) -> None:
    """Raise ValueError naming the field at fault when cronsim rejects `expression`."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"bad cron expression {expression!r}: expected five fields "
            f"(minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    # cronsim only says "Bad minute": try each field alone to say which value is wrong and why
    for position, (name, lowest, highest) in enumerate(_CRON_FIELDS):
        alone = ["*"] * 5
        alone[position] = fields[position]
        if not _cronsim_accepts(" ".join(alone)):
            problem = _field_problem(fields[position], name, lowest, highest)
            raise ValueError(f"bad cron expression {expression!r}: {problem}")
    # every field is fine alone; the one combination cronsim refuses is a day that no month has
    if not _cronsim_accepts(expression):
        raise ValueError(
            f"bad cron expression {expression!r}: day-of-month {fields[2]} never occurs in month {fields[3]}"
        )


def _cronsim_accepts(expression: str) -> bool:
    try:
        CronSim(expression, EPOCH)
    except CronSimError:
        return False
    return True


def _field_problem(value: str, name: str, lowest: int, highest: int) -> str:
    # the step after "/" may be any positive number, so only the part before it is range-checked
    for number in re.findall(r"\d+", value.split("/")[0]):
        if not lowest <= int(number) <= highest:
            return f"{name} {number} out of range {lowest}-{highest}"
    return f"{name} {value!r} is not a number {lowest}-{highest}, a range (1-5), a list (1,3), a step (*/15) or *"


def _first_instant_at(day: date, zone: ZoneInfo) -> datetime:
    """Local midnight of `day` in UTC: its first occurrence, or the first valid instant after it."""
    local = datetime.combine(day, time(), tzinfo=zone)  # fold=0 picks the first of two occurrences
    while local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        local += timedelta(minutes=1)  # aware + timedelta moves the wall clock, out of the gap
    return local.astimezone(UTC)


def _every(count: int, unit: str) -> str:
    return f"every {unit}" if count == 1 else f"every {count} {unit}s"


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {moment.isoformat()}")
    return moment


# what a recurring entry does about the runs it missed while no scheduler ran: the latest one, or none
CATCH_UP = ("latest", "none")
