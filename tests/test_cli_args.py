from datetime import UTC, datetime

import pytest

from jobctl.cli.jobs import parse_kwargs, parse_run_at, parse_value
from jobctl.errors import UsageError


def test_values_are_json_where_they_parse():
    assert [
        parse_value(v, "argument")
        for v in ["5", "2.5", "true", "null", "[1, 2]", '{"a": 1}', "UC_x5", "hello world", '"5"']
    ] == [
        5,
        2.5,
        True,
        None,
        [1, 2],
        {"a": 1},
        "UC_x5",
        "hello world",
        "5",
    ]


def test_values_that_are_no_strict_json_stay_strings():
    assert [parse_value(v, "argument") for v in ["NaN", "Infinity", "-Infinity", "1e999", "[1, NaN]", "-1e999"]] == [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e999",
        "[1, NaN]",
        "-1e999",
    ]
    with pytest.raises(UsageError, match=r"^argument 3: nested deeper than 100 levels"):
        parse_value("[" * 5000 + "]" * 5000, "argument 3")


def test_kwargs():
    assert parse_kwargs(["width=640", "name=photo.png", "tags=[1]", "empty="]) == {
        "width": 640,
        "name": "photo.png",
        "tags": [1],
        "empty": "",
    }
    with pytest.raises(UsageError, match="-k/--kwarg 'width640': expected key=value"):
        parse_kwargs(["width640"])


def test_run_at():
    now = 1_000_000.0
    assert parse_run_at("5m", None, now) == now + 300
    assert parse_run_at(None, "2026-05-01T09:30:00+00:00", now) == datetime(2026, 5, 1, 9, 30, tzinfo=UTC).timestamp()
    assert parse_run_at(None, None, now) is None
    with pytest.raises(UsageError, match="--in 'soon': expected a duration"):
        parse_run_at("soon", None, now)
    with pytest.raises(UsageError, match="--at 'tomorrow': expected an ISO date-time"):
        parse_run_at(None, "tomorrow", now)
    with pytest.raises(UsageError, match="give one or the other"):
        parse_run_at("5m", "2026-05-01T09:30:00", now)
