import pytest

from jobctl.options.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("500ms", 0.5),
        ("10s", 10),
        ("5m", 300),
        ("2h", 7200),
        ("1d", 86400),
        ("1.5s", 1.5),
        (30, 30),
        ("45", 45),
        (0.25, 0.25),
    ],
)
def test_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "5 minutes", "-1s", "m5", -3, True, None, [1]])
def test_parse_rejects(bad):
    with pytest.raises(ValueError, match="expected a duration like 500ms, 10s, 5m, 2h, 1d"):
        parse_duration(bad)


def test_format():
    assert [format_duration(s) for s in (0.0123, 12.34, 245, 7800, 90000)] == [
        "12ms",
        "12.3s",
        "4m05s",
        "2h10m",
        "1d1h",
    ]
