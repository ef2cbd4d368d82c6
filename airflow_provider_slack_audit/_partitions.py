"""The partition key of a landed window (Airflow 3.2+ partitioned assets), and back.

A window's key is its start in UTC: the day, ``2026-01-04``, for a window of exactly one UTC day
starting at midnight; the instant, ``2026-01-04T06:00:00``, for any other window. The day form is
what ``CronPartitionTimetable("0 0 * * *", timezone="UTC", key_format="%Y-%m-%d")`` names a daily
run and what ``StartOfDayMapper`` maps an instant to; the instant form is the default ``key_format``
of ``CronPartitionTimetable`` and the default ``input_format`` of Airflow's temporal partition
mappers, so downstream DAGs can roll windows up to days, weeks or months with Airflow's own mappers.
Keys carry no zone because those formats carry none: they are always UTC.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

from airflow_provider_slack_audit.ingest.windows import Window

DAY_KEY_FORMAT = "%Y-%m-%d"
INSTANT_KEY_FORMAT = "%Y-%m-%dT%H:%M:%S"
_DAY = timedelta(days=1)


def window_partition_key(window: Window) -> str:
    """The partition key of ``window``: its UTC start day for a UTC day, else its UTC start instant."""
    start = window.start.astimezone(timezone.utc)
    if window.end - window.start == _DAY and start.timetz() == time(0, tzinfo=timezone.utc):
        return start.strftime(DAY_KEY_FORMAT)
    return start.strftime(INSTANT_KEY_FORMAT + (".%f" if start.microsecond else ""))


def partition_day_window(key: str) -> Window:
    """The UTC day a day key (``2026-01-04``) names, for a run a partition timetable made.

    Only a day key names a whole window: an instant key names its start, not its length.
    """
    try:
        day = datetime.strptime(key.strip(), DAY_KEY_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise ValueError(
            f"the run's partition key {key!r} is not a UTC day such as '2026-01-04', so it names no "
            "window to land: schedule the landing DAG with CronPartitionTimetable('0 0 * * *', "
            "timezone='UTC', key_format='%Y-%m-%d', run_offset=-1), or pass oldest and latest"
        ) from None
    return Window(day, day + _DAY)


def check_partition_key(key: str, window: Window) -> None:
    """Refuse an asset event whose partition key names another window than its extra records."""
    expected = window_partition_key(window)
    if key != expected:
        raise ValueError(
            f"the asset event's partition key {key!r} does not name the window its extra records, "
            f"[{window.start.isoformat()}, {window.end.isoformat()}), whose key is {expected!r}: "
            "the event was not emitted by the landing operator for this window; load the manifest "
            "by its URL instead"
        )
