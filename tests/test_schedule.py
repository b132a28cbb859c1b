"""Unit tests of jobctl.options.schedule with fixed clocks: parsing, due times, DST, interval anchoring.

DST dates used (2025):
  Europe/Paris      spring forward Sun 30 Mar 02:00 CET -> 03:00 CEST (01:00Z);
                    fall back      Sun 26 Oct 03:00 CEST -> 02:00 CET (01:00Z): 02:xx occurs twice.
  America/New_York  spring forward Sun  9 Mar 02:00 EST -> 03:00 EDT (07:00Z);
                    fall back      Sun  2 Nov 02:00 EDT -> 01:00 EST (06:00Z): 01:xx occurs twice.
"""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jobctl.options.schedule import parse_schedule

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


def local(zone: str, *fields: int, fold: int = 0) -> datetime:
    return datetime(*fields, tzinfo=ZoneInfo(zone), fold=fold)


# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, description",
    [
        ("*/15 * * * *", "cron */15 * * * * (UTC)"),
        ("0 9 * * mon-fri", "cron 0 9 * * mon-fri (UTC)"),
        ("@daily", "cron @daily (UTC)"),
        ("@Hourly", "cron @Hourly (UTC)"),
        ("every 30 seconds", "every 30 seconds"),
        ("every 30s", "every 30 seconds"),
        ("every minute", "every minute"),
        ("every 1 minutes", "every minute"),
        ("  every 2 Hours ", "every 2 hours"),
        ("every 1 day", "every day at midnight (UTC)"),
        ("every 3d", "every 3 days at midnight (UTC)"),
    ],
)
def test_parse_valid(text: str, description: str) -> None:
    schedule = parse_schedule(text)
    assert schedule.text == text
    assert schedule.timezone == "UTC"
    assert schedule.describe() == description


def test_parse_keeps_the_timezone() -> None:
    schedule = parse_schedule("*/15 * * * *", PARIS)
    assert schedule.timezone == PARIS
    assert schedule.describe() == "cron */15 * * * * (Europe/Paris)"


@pytest.mark.parametrize(
    "text, timezone, message",
    [
        ("61 * * * *", "UTC", "bad cron expression '61 * * * *': minute 61 out of range 0-59"),
        ("0 24 * * *", "UTC", "bad cron expression '0 24 * * *': hour 24 out of range 0-23"),
        ("0 0 0 * *", "UTC", "bad cron expression '0 0 0 * *': day-of-month 0 out of range 1-31"),
        ("0 0 * 1-13 *", "UTC", "bad cron expression '0 0 * 1-13 *': month 13 out of range 1-12"),
        ("0 0 * * 8", "UTC", "bad cron expression '0 0 * * 8': day-of-week 8 out of range 0-7"),
        (
            "0 0 * * funday",
            "UTC",
            (
                "bad cron expression '0 0 * * funday': day-of-week 'funday' is not a number 0-7, "
                "a range (1-5), a list (1,3), a step (*/15) or *"
            ),
        ),
        (
            "*/0 * * * *",
            "UTC",
            (
                "bad cron expression '*/0 * * * *': minute '*/0' is not a number 0-59, "
                "a range (1-5), a list (1,3), a step (*/15) or *"
            ),
        ),
        ("0 0 30 2 *", "UTC", "bad cron expression '0 0 30 2 *': day-of-month 30 never occurs in month 2"),
        (
            "* * *",
            "UTC",
            "bad cron expression '* * *': expected five fields (minute hour day-of-month month day-of-week), got 3",
        ),
        (
            "0 0 0 * * * *",
            "UTC",
            (
                "bad cron expression '0 0 0 * * * *': expected five fields "
                "(minute hour day-of-month month day-of-week), got 7"
            ),
        ),
        ("@fortnightly", "UTC", "unknown cron alias '@fortnightly': expected one of @hourly, @daily, @midnight"),
        ("every 0 minutes", "UTC", "bad interval 'every 0 minutes': expected a count of at least 1"),
        (
            "every 2 weeks",
            "UTC",
            "bad interval 'every 2 weeks': unknown unit 'weeks', expected seconds, minutes, hours or days",
        ),
        (
            "every few minutes",
            "UTC",
            "bad interval 'every few minutes': expected 'every N seconds|minutes|hours|days', e.g. 'every 30 seconds'",
        ),
        ("", "UTC", "empty schedule '': expected a five-field cron expression"),
        ("  ", "UTC", "empty schedule '  ': expected a five-field cron expression"),
        (None, "UTC", "empty schedule None: expected a five-field cron expression"),
        ("* * * * *", "Mars/Base", "unknown timezone 'Mars/Base': expected an IANA name like 'Europe/Paris' or 'UTC'"),
        ("* * * * *", "", "unknown timezone '': expected an IANA name"),
        ("* * * * *", None, "unknown timezone None: expected an IANA name"),
    ],
)
def test_parse_invalid(text: str, timezone: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_schedule(text, timezone)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="moment must be a timezone-aware datetime"):
        parse_schedule("* * * * *").next_after(datetime(2025, 1, 1))


# --- cron in UTC and in another zone -------------------------------------------------------------


def test_cron_next_after_is_strictly_after() -> None:
    schedule = parse_schedule("*/15 * * * *")
    assert schedule.next_after(utc(2025, 1, 15, 10, 7, 30)) == utc(2025, 1, 15, 10, 15)
    assert schedule.next_after(utc(2025, 1, 15, 10, 15)) == utc(2025, 1, 15, 10, 30)
    assert schedule.next_after(utc(2025, 1, 15, 10, 14, 59, 999999)) == utc(2025, 1, 15, 10, 15)


def test_cron_returns_aware_utc_whatever_zone_the_moment_is_in() -> None:
    schedule = parse_schedule("0 9 * * *")
    # 18:30 in Tokyo (UTC+9) is 09:30Z, after today's 09:00Z run
    due = schedule.next_after(local("Asia/Tokyo", 2025, 1, 15, 18, 30))
    assert due == utc(2025, 1, 16, 9)
    assert due.tzinfo is UTC


def test_cron_next_runs() -> None:
    assert parse_schedule("@hourly").next_runs(utc(2025, 1, 15, 10, 0)) == [
        utc(2025, 1, 15, 11),
        utc(2025, 1, 15, 12),
        utc(2025, 1, 15, 13),
    ]
    assert parse_schedule("0 0 * * 0").next_runs(utc(2025, 1, 15), count=2) == [  # Wed 15 Jan
        utc(2025, 1, 19),
        utc(2025, 1, 26),
    ]


def test_cron_in_a_zone_follows_its_offset_summer_and_winter() -> None:
    schedule = parse_schedule("0 9 * * mon-fri", PARIS)
    # Friday 17 Jan, winter (UTC+1): 09:00 CET = 08:00Z, then Monday
    assert schedule.next_runs(utc(2025, 1, 17, 7), count=2) == [utc(2025, 1, 17, 8), utc(2025, 1, 20, 8)]
    # Tuesday 15 Jul, summer (UTC+2): 09:00 CEST = 07:00Z
    assert schedule.next_after(utc(2025, 7, 15, 7)) == utc(2025, 7, 16, 7)


def test_cron_due_between_is_half_open() -> None:
    schedule = parse_schedule("*/15 * * * *", NEW_YORK)
    assert schedule.due_between(utc(2025, 1, 15, 10), utc(2025, 1, 15, 11)) == [
        utc(2025, 1, 15, 10, 15),
        utc(2025, 1, 15, 10, 30),
        utc(2025, 1, 15, 10, 45),
        utc(2025, 1, 15, 11),
    ]
    assert schedule.due_between(utc(2025, 1, 15, 11), utc(2025, 1, 15, 10)) == []


# --- DST: daily fixed times ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "zone, expression, after, until, expected",
    [
        # Paris spring forward: 02:30 does not exist on 30 Mar, runs once at 03:00 CEST
        (
            PARIS,
            "30 2 * * *",
            utc(2025, 3, 29),
            utc(2025, 4, 1),
            [
                utc(2025, 3, 29, 1, 30),  # 02:30 CET
                utc(2025, 3, 30, 1, 0),  # 03:00 CEST, the first valid instant after the gap
                utc(2025, 3, 31, 0, 30),  # 02:30 CEST
            ],
        ),
        # Paris fall back: 02:30 happens twice on 26 Oct, runs at the first (CEST) only
        (
            PARIS,
            "30 2 * * *",
            utc(2025, 10, 25),
            utc(2025, 10, 28),
            [
                utc(2025, 10, 25, 0, 30),  # 02:30 CEST
                utc(2025, 10, 26, 0, 30),  # 02:30 CEST, not again at 01:30Z (02:30 CET)
                utc(2025, 10, 27, 1, 30),  # 02:30 CET
            ],
        ),
        # Paris: 01:30 is outside both transitions, once a day at the local time
        (
            PARIS,
            "30 1 * * *",
            utc(2025, 3, 29),
            utc(2025, 3, 31, 12),
            [
                utc(2025, 3, 29, 0, 30),
                utc(2025, 3, 30, 0, 30),
                utc(2025, 3, 30, 23, 30),  # 01:30 CEST on 31 Mar
            ],
        ),
        (
            PARIS,
            "30 1 * * *",
            utc(2025, 10, 25),
            utc(2025, 10, 28),
            [
                utc(2025, 10, 25, 23, 30),  # 01:30 CEST on 26 Oct, before the fall-back
                utc(2025, 10, 27, 0, 30),  # 01:30 CET
            ],
        ),
        # New York spring forward: 02:30 does not exist on 9 Mar, runs once at 03:00 EDT
        (
            NEW_YORK,
            "30 2 * * *",
            utc(2025, 3, 8),
            utc(2025, 3, 11),
            [
                utc(2025, 3, 8, 7, 30),  # 02:30 EST
                utc(2025, 3, 9, 7, 0),  # 03:00 EDT
                utc(2025, 3, 10, 6, 30),  # 02:30 EDT
            ],
        ),
        (
            NEW_YORK,
            "30 2 * * *",
            utc(2025, 11, 1),
            utc(2025, 11, 4),
            [
                utc(2025, 11, 1, 6, 30),  # 02:30 EDT
                utc(2025, 11, 2, 7, 30),  # 02:30 EST, once: 02:xx is not repeated in New York
                utc(2025, 11, 3, 7, 30),
            ],
        ),
        (
            NEW_YORK,
            "30 1 * * *",
            utc(2025, 3, 8),
            utc(2025, 3, 11),
            [
                utc(2025, 3, 8, 6, 30),  # 01:30 EST
                utc(2025, 3, 9, 6, 30),  # 01:30 EST, just before the jump
                utc(2025, 3, 10, 5, 30),  # 01:30 EDT
            ],
        ),
        # New York fall back: 01:30 happens twice on 2 Nov, runs at the first (EDT) only
        (
            NEW_YORK,
            "30 1 * * *",
            utc(2025, 11, 1),
            utc(2025, 11, 4),
            [
                utc(2025, 11, 1, 5, 30),  # 01:30 EDT
                utc(2025, 11, 2, 5, 30),  # 01:30 EDT, not again at 06:30Z (01:30 EST)
                utc(2025, 11, 3, 6, 30),  # 01:30 EST
            ],
        ),
        # two times inside the gap both move to 03:00: one run there, not two
        (
            PARIS,
            "0,30 2 * * *",
            utc(2025, 3, 29, 12),
            utc(2025, 3, 31, 1),
            [
                utc(2025, 3, 30, 1, 0),
                utc(2025, 3, 31, 0, 0),
                utc(2025, 3, 31, 0, 30),
            ],
        ),
    ],
)
def test_dst_daily_fixed_time(zone: str, expression: str, after: datetime, until: datetime, expected: list) -> None:
    assert parse_schedule(expression, zone).due_between(after, until) == expected


def test_dst_fixed_time_asked_from_inside_the_repeated_hour_is_not_in_the_past() -> None:
    schedule = parse_schedule("30 1 * * *", NEW_YORK)
    # 01:15 EST, the second 01:xx: today's 01:30 already ran at 01:30 EDT (05:30Z)
    inside_second_hour = local(NEW_YORK, 2025, 11, 2, 1, 15, fold=1)
    # (PEP 495: a fold=1 time never compares equal across zones, hence astimezone)
    assert inside_second_hour.astimezone(UTC) == utc(2025, 11, 2, 6, 15)
    assert schedule.next_after(inside_second_hour) == utc(2025, 11, 3, 6, 30)
    # asking during the first 01:xx finds the first occurrence
    assert schedule.next_after(utc(2025, 11, 2, 5, 15)) == utc(2025, 11, 2, 5, 30)


# --- DST: hourly ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "zone, after, local_hours",
    [
        (PARIS, utc(2025, 3, 29, 22, 30), ["00:00+01", "01:00+01", "03:00+02", "04:00+02", "05:00+02"]),
        (PARIS, utc(2025, 10, 25, 22, 30), ["01:00+02", "02:00+02", "02:00+01", "03:00+01", "04:00+01"]),
        (NEW_YORK, utc(2025, 3, 9, 4, 30), ["00:00-05", "01:00-05", "03:00-04", "04:00-04", "05:00-04"]),
        (NEW_YORK, utc(2025, 11, 2, 3, 30), ["00:00-04", "01:00-04", "01:00-05", "02:00-05", "03:00-05"]),
    ],
)
def test_dst_hourly_runs_once_every_real_hour(zone: str, after: datetime, local_hours: list) -> None:
    runs = parse_schedule("0 * * * *", zone).due_between(after, after + timedelta(hours=5))
    # five runs in five real hours, one per hour: none skipped, none doubled
    assert runs == [after + timedelta(minutes=30 + 60 * hour) for hour in range(5)]
    assert [run.astimezone(ZoneInfo(zone)).strftime("%H:%M%z")[:-2] for run in runs] == local_hours


# --- intervals -----------------------------------------------------------------------------------


def test_interval_is_anchored_at_the_epoch() -> None:
    schedule = parse_schedule("every 7 minutes")
    # 2025-01-01T00:00Z is 1735689600 s = 4132594 * 420 + 120: two minutes past a due time
    assert schedule.next_after(utc(2025, 1, 1)) == utc(2025, 1, 1, 0, 5)
    assert schedule.next_runs(utc(2025, 1, 1), count=3) == [
        utc(2025, 1, 1, 0, 5),
        utc(2025, 1, 1, 0, 12),
        utc(2025, 1, 1, 0, 19),
    ]


def test_interval_is_strictly_after() -> None:
    schedule = parse_schedule("every 15 minutes")
    assert schedule.next_after(utc(2025, 1, 15, 10, 7, 30)) == utc(2025, 1, 15, 10, 15)
    assert schedule.next_after(utc(2025, 1, 15, 10, 15)) == utc(2025, 1, 15, 10, 30)
    assert parse_schedule("every 30 seconds").next_runs(utc(2025, 1, 15, 10, 0, 10)) == [
        utc(2025, 1, 15, 10, 0, 30),
        utc(2025, 1, 15, 10, 1, 0),
        utc(2025, 1, 15, 10, 1, 30),
    ]


def test_interval_due_times_are_identical_across_schedulers_and_calls() -> None:
    # two scheduler processes, each with its own parse, asking at different moments
    first = parse_schedule("every 7 minutes")
    second = parse_schedule("every 7 minutes", PARIS)
    early = first.due_between(utc(2025, 1, 1), utc(2025, 1, 1, 1))
    late = second.due_between(utc(2025, 1, 1, 0, 13, 59, 500000), utc(2025, 1, 1, 1))
    assert late == early[2:]
    assert all(second.next_after(due - timedelta(seconds=1)) == due for due in early)


def test_hour_interval_is_elapsed_time_across_dst() -> None:
    schedule = parse_schedule("every 2 hours", PARIS)
    runs = schedule.due_between(utc(2025, 10, 25, 23), utc(2025, 10, 26, 5))
    assert runs == [utc(2025, 10, 26, 0), utc(2025, 10, 26, 2), utc(2025, 10, 26, 4)]
    # on the local clock: 02:00 CEST, 03:00 CET, 05:00 CET - two real hours apart each time
    assert [run.astimezone(ZoneInfo(PARIS)).hour for run in runs] == [2, 3, 5]


def test_day_interval_is_local_midnight() -> None:
    schedule = parse_schedule("every 1 day", PARIS)
    assert schedule.due_between(utc(2025, 3, 28, 12), utc(2025, 4, 1)) == [
        utc(2025, 3, 28, 23),  # 29 Mar 00:00 CET
        utc(2025, 3, 29, 23),  # 30 Mar 00:00 CET
        utc(2025, 3, 30, 22),  # 31 Mar 00:00 CEST: that day was 23 hours long
        utc(2025, 3, 31, 22),
    ]


def test_day_interval_counts_days_from_1970() -> None:
    # 2025-01-01 is day 20089 since 1970-01-01 (odd), so "every 2 days" falls on 2 Jan, 4 Jan, ...
    schedule = parse_schedule("every 2 days")
    assert schedule.next_runs(utc(2025, 1, 1)) == [utc(2025, 1, 2), utc(2025, 1, 4), utc(2025, 1, 6)]
    assert schedule.next_after(utc(2025, 1, 2)) == utc(2025, 1, 4)
    assert schedule.next_after(utc(2025, 1, 1, 23, 59, 59)) == utc(2025, 1, 2)


def test_day_interval_when_midnight_does_not_exist_or_repeats() -> None:
    # Santiago jumps 7 Sep 2025 00:00 -04 -> 01:00 -03: that day starts at 01:00 -03 (04:00Z)
    santiago = parse_schedule("every day", "America/Santiago")
    assert santiago.next_runs(utc(2025, 9, 6, 12)) == [utc(2025, 9, 7, 4), utc(2025, 9, 8, 3), utc(2025, 9, 9, 3)]
    # Havana falls back 2 Nov 2025 01:00 CDT -> 00:00 CST: midnight happens at 04:00Z and 05:00Z
    havana = parse_schedule("every day", "America/Havana")
    assert havana.due_between(utc(2025, 11, 1, 12), utc(2025, 11, 3, 12)) == [utc(2025, 11, 2, 4), utc(2025, 11, 3, 5)]


# --- limits --------------------------------------------------------------------------------------


def test_due_between_limit_keeps_the_oldest() -> None:
    schedule = parse_schedule("every 1 second")
    start = utc(2025, 1, 1)
    assert schedule.due_between(start, start + timedelta(hours=1), limit=3) == [
        start + timedelta(seconds=1),
        start + timedelta(seconds=2),
        start + timedelta(seconds=3),
    ]
    assert len(schedule.due_between(start, start + timedelta(days=1))) == 1000
    assert schedule.due_between(start, start + timedelta(hours=1), limit=0) == []
