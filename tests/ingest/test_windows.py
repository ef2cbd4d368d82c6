from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_slack_audit.ingest.windows import EARLIEST, Interval, Window, cell_start, parse_datetime

UTC = timezone.utc
DAY_START = datetime(2026, 1, 4, tzinfo=UTC)
DAY_START_SECONDS = 1767484800  # 2026-01-04T00:00:00Z

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_MICROS = (EARLIEST - EPOCH) // timedelta(microseconds=1)
MAX_MICROS = (datetime(2100, 1, 1, tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)
FORTY_DAYS_MICROS = 40 * 86_400 * 1_000_000


def at_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


@st.composite
def windows_and_steps(draw: st.DrawFn) -> tuple[Window, timedelta]:
    """A window with microsecond bounds in 2018..2100 and a step of 1 µs..40 days, at most ~400 steps long."""
    step = draw(
        st.one_of(
            st.integers(1, 3_000_000),  # sub-second to a few seconds: exercises dropped empty intervals
            st.integers(1, FORTY_DAYS_MICROS),
        )
    )
    start = draw(st.integers(MIN_MICROS, MAX_MICROS - 1))
    length = draw(st.integers(1, min(step * 400, MAX_MICROS - start)))
    return Window(at_micros(start), at_micros(start + length)), timedelta(microseconds=step)


@st.composite
def intervals(draw: st.DrawFn) -> Interval:
    start = draw(st.integers(MIN_MICROS, MAX_MICROS - 1))
    end = draw(st.integers(start + 1, MAX_MICROS))
    return Interval(at_micros(start), at_micros(end))


# Splitting ------------------------------------------------------------------------------------------


def test_daily_window_split_hourly_gives_24_intervals_with_inclusive_api_bounds():
    window = Window(DAY_START, DAY_START + timedelta(days=1))

    parts = window.intervals(timedelta(hours=1))

    assert len(parts) == 24
    assert [(part.oldest, part.latest) for part in parts] == [
        (DAY_START_SECONDS + hour * 3600, DAY_START_SECONDS + hour * 3600 + 3599) for hour in range(24)
    ]
    assert (window.oldest, window.latest) == (DAY_START_SECONDS, DAY_START_SECONDS + 86_399)


def test_last_interval_is_cut_at_the_window_end():
    window = Window(DAY_START, DAY_START + timedelta(hours=2, minutes=30))

    parts = window.intervals(timedelta(hours=1))

    assert [part.end - DAY_START for part in parts] == [
        timedelta(hours=1),
        timedelta(hours=2),
        timedelta(hours=2, minutes=30),
    ]


def test_sub_second_pieces_without_a_whole_second_are_dropped():
    window = Window(DAY_START, DAY_START + timedelta(seconds=1))

    parts = window.intervals(timedelta(milliseconds=300))

    # [0, .3) holds second 0; [.3, .6), [.6, .9) and [.9, 1) hold none.
    assert parts == [Interval(DAY_START, DAY_START + timedelta(milliseconds=300))]
    assert (parts[0].oldest, parts[0].latest) == (DAY_START_SECONDS, DAY_START_SECONDS)


def test_window_without_a_whole_second_has_no_intervals():
    window = Window(DAY_START + timedelta(milliseconds=100), DAY_START + timedelta(milliseconds=900))

    assert window.is_empty
    assert window.intervals(timedelta(hours=1)) == []


@pytest.mark.parametrize("step", [timedelta(0), timedelta(hours=-1)])
def test_non_positive_step_is_refused(step):
    window = Window(DAY_START, DAY_START + timedelta(days=1))

    with pytest.raises(ValueError, match=r"is not positive; pass e.g. timedelta"):
        window.intervals(step)


def test_step_must_be_a_timedelta():
    window = Window(DAY_START, DAY_START + timedelta(days=1))

    with pytest.raises(TypeError, match=r"interval length must be a timedelta"):
        window.intervals(3600)  # type: ignore[arg-type]


@given(windows_and_steps())
def test_intervals_tile_the_window_in_order(window_and_step):
    window, step = window_and_step

    parts = window.intervals(step)

    assert parts == sorted(parts)
    assert all(not part.is_empty for part in parts)
    assert all(part.end - part.start <= step for part in parts)
    # Kept intervals touch, except where dropped empty pieces sat: those gaps hold no whole second.
    pieces = [window.start, *[bound for part in parts for bound in (part.start, part.end)], window.end]
    for gap_start, gap_end in zip(pieces[::2], pieces[1::2], strict=True):
        assert gap_start <= gap_end
        if gap_start < gap_end:
            assert Interval(gap_start, gap_end).is_empty


@given(windows_and_steps())
def test_every_second_of_the_window_is_in_exactly_one_interval(window_and_step):
    window, step = window_and_step

    parts = window.intervals(step)

    # Consecutive inclusive ranges starting at window.oldest and ending at window.latest, each one
    # beginning right after the previous: a partition of the window's seconds.
    next_second = window.oldest
    for part in parts:
        assert part.oldest == next_second
        next_second = part.latest + 1
    assert next_second == window.latest + 1


@given(windows_and_steps().filter(lambda pair: pair[0].latest - pair[0].oldest < 2000))
def test_every_second_counted_once_by_enumeration(window_and_step):
    window, step = window_and_step

    parts = window.intervals(step)

    hits = Counter(second for part in parts for second in range(part.oldest, part.latest + 1))
    assert set(hits) == set(range(window.oldest, window.latest + 1))
    assert set(hits.values()) <= {1}


# Bounds -------------------------------------------------------------------------------------------


def test_bounds_round_partial_seconds_up():
    one_micro = timedelta(microseconds=1)
    interval = Interval(DAY_START + one_micro, DAY_START + timedelta(hours=1) + one_micro)

    # ceil(start) skips the partial first second; ceil(end) - 1 keeps the last second the end reaches.
    assert interval.oldest == DAY_START_SECONDS + 1
    assert interval.latest == DAY_START_SECONDS + 3600


def test_bounds_one_microsecond_before_a_second():
    one_micro = timedelta(microseconds=1)
    interval = Interval(DAY_START - one_micro, DAY_START + timedelta(seconds=1) - one_micro)

    assert (interval.oldest, interval.latest) == (DAY_START_SECONDS, DAY_START_SECONDS)


def test_adjacent_intervals_never_share_a_second():
    middle = DAY_START + timedelta(minutes=30, microseconds=250_000)
    first = Interval(DAY_START, middle)
    second = Interval(middle, DAY_START + timedelta(hours=1))

    assert first.latest + 1 == second.oldest


def test_sub_second_interval_is_empty():
    interval = Interval(DAY_START + timedelta(milliseconds=1), DAY_START + timedelta(milliseconds=999))

    assert interval.is_empty


# Keys and JSON ------------------------------------------------------------------------------------


def test_key_names_whole_second_bounds_compactly():
    interval = Interval(DAY_START, DAY_START + timedelta(hours=1))

    assert interval.key == "20260104T000000Z_20260104T010000Z"


def test_key_includes_microseconds_only_when_non_zero():
    interval = Interval(DAY_START + timedelta(microseconds=5), DAY_START + timedelta(hours=1))

    assert interval.key == "20260104T000000_000005Z_20260104T010000Z"


def test_window_key_uses_the_same_format():
    window = Window(DAY_START, DAY_START + timedelta(days=1))

    assert window.key == "20260104T000000Z_20260105T000000Z"


@given(st.lists(intervals(), min_size=2, max_size=20, unique=True))
def test_keys_sort_like_the_intervals(values):
    assert sorted(values, key=lambda interval: interval.key) == sorted(values)


@given(intervals())
def test_key_is_filename_safe(interval):
    assert interval.key.replace("_", "").replace("T", "").replace("Z", "").isdigit()


@given(intervals())
def test_interval_json_round_trip_is_exact(interval):
    assert Interval.from_json(interval.to_json()) == interval


@given(windows_and_steps())
def test_window_json_round_trip_is_exact(window_and_step):
    window, _ = window_and_step

    assert Window.from_json(window.to_json()) == window


def test_window_json_carries_iso_bounds_and_api_bounds():
    window = Window(DAY_START, DAY_START + timedelta(days=1))

    assert window.to_json() == {
        "start": "2026-01-04T00:00:00+00:00",
        "end": "2026-01-05T00:00:00+00:00",
        "oldest": DAY_START_SECONDS,
        "latest": DAY_START_SECONDS + 86_399,
    }


# Validation ---------------------------------------------------------------------------------------


def test_naive_datetime_is_refused_with_a_fix():
    with pytest.raises(
        ValueError, match=r"^oldest 2026-01-02T00:00:00 has no timezone; pass an aware"
    ) as info:
        Window(datetime(2026, 1, 2), datetime(2026, 1, 3, tzinfo=UTC))

    assert "replace(tzinfo=timezone.utc)" in str(info.value)


def test_start_after_end_is_refused():
    with pytest.raises(
        ValueError,
        match=r"^oldest 2026-01-02T00:00:00\+00:00 is not before latest 2026-01-01T00:00:00\+00:00",
    ):
        Window(datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))


def test_equal_bounds_are_refused_as_an_empty_window():
    with pytest.raises(ValueError, match=r"is not before latest .* empty window"):
        Window(DAY_START, DAY_START)


def test_window_before_earliest_audit_data_is_refused():
    with pytest.raises(
        ValueError, match=r"is before 2018-03-01T00:00:00\+00:00.*start the window at 2018-03-01"
    ):
        Window(EARLIEST - timedelta(microseconds=1), DAY_START)


def test_window_at_earliest_is_accepted():
    assert Window(EARLIEST, DAY_START).oldest == 1519862400


def test_window_bounds_are_normalized_to_utc():
    plus_two = timezone(timedelta(hours=2))

    window = Window(datetime(2026, 1, 4, 2, tzinfo=plus_two), datetime(2026, 1, 5, 2, tzinfo=plus_two))

    assert window.start.tzinfo is UTC
    assert window == Window(DAY_START, DAY_START + timedelta(days=1))


def test_naive_interval_is_refused():
    with pytest.raises(ValueError, match=r"^start 2026-01-04T00:00:00 has no timezone"):
        Interval(datetime(2026, 1, 4), DAY_START + timedelta(hours=1))


# parse_datetime -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["2026-01-04", "2026-01-04T00:00:00Z", "2026-01-04T00:00:00+00:00", "2026-01-04T02:00:00+02:00"],
)
def test_parse_datetime_accepts_iso_strings(text):
    parsed = parse_datetime(text, "oldest")

    assert parsed == DAY_START
    assert parsed.tzinfo is UTC


def test_parse_datetime_keeps_microseconds():
    assert parse_datetime("2026-01-04T00:00:00.000001Z", "oldest") == DAY_START + timedelta(microseconds=1)


def test_parse_datetime_refuses_naive_strings():
    with pytest.raises(ValueError, match=r"^latest 2026-01-04T00:00:00 has no timezone"):
        parse_datetime("2026-01-04T00:00:00", "latest")


def test_parse_datetime_refuses_non_iso_strings():
    with pytest.raises(ValueError, match=r"oldest 'yesterday' is not an ISO-8601 datetime"):
        parse_datetime("yesterday", "oldest")


@pytest.mark.parametrize("value", [1767484800, 1767484800.0, None])
def test_parse_datetime_names_the_parameter_for_other_types(value):
    with pytest.raises(TypeError, match=r"^oldest must be a datetime or an ISO-8601 string"):
        parse_datetime(value, "oldest")


def test_pendulum_datetimes_from_airflows_context_become_plain_utc_datetimes() -> None:
    import pendulum

    start = pendulum.datetime(2026, 1, 4, 1, tz="Europe/Paris")
    window = Window(start, start.add(days=1))
    assert type(window.start) is datetime
    assert window.start == datetime(2026, 1, 4, 0, tzinfo=timezone.utc)
    assert len(window.intervals(timedelta(hours=1))) == 24


# The fixed grid -------------------------------------------------------------------------------------


def test_intervals_lie_on_the_epoch_grid_whatever_the_window_start():
    day = datetime(2026, 1, 4, tzinfo=timezone.utc)
    shifted = Window(day + timedelta(minutes=30), day + timedelta(hours=2, minutes=30))

    assert [(i.start, i.end) for i in shifted.intervals(timedelta(hours=1))] == [
        (day + timedelta(minutes=30), day + timedelta(hours=1)),
        (day + timedelta(hours=1), day + timedelta(hours=2)),
        (day + timedelta(hours=2), day + timedelta(hours=2, minutes=30)),
    ]


def test_two_windows_share_the_keys_of_the_whole_cells_they_both_hold():
    day = datetime(2026, 1, 4, tzinfo=timezone.utc)
    utc_day = Window(day, day + timedelta(days=1))
    kolkata_day = Window(day - timedelta(hours=5, minutes=30), day + timedelta(hours=18, minutes=30))
    hourly = timedelta(hours=1)

    utc_keys = {i.key for i in utc_day.intervals(hourly)}
    kolkata_keys = {i.key for i in kolkata_day.intervals(hourly)}

    assert len(utc_keys & kolkata_keys) == 18  # the whole hours 00:00..18:00 both windows hold
    assert cell_start(kolkata_day.start, hourly) != kolkata_day.start  # not on the hourly grid
    assert cell_start(kolkata_day.start, timedelta(minutes=30)) == kolkata_day.start


def test_a_six_hour_grid_counts_from_the_epoch_not_from_the_window():
    start = datetime(2026, 1, 4, 3, tzinfo=timezone.utc)
    (first, *_rest) = Window(start, start + timedelta(days=1)).intervals(timedelta(hours=6))

    assert first.end == datetime(2026, 1, 4, 6, tzinfo=timezone.utc)
