"""The fake server's events are deterministic, realistic, bursty and cheap to hold."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from airflow_provider_slack_audit.testing import EventSet, default_span, to_unix_seconds

from support.fake_api import END, START


@pytest.fixture(scope="module")
def events() -> EventSet:
    return EventSet.generate(events=5000, seed=9, start=START, end=END)


@pytest.fixture(scope="module")
def entries(events: EventSet) -> list[dict[str, Any]]:
    return [msgspec.json.decode(events.render(index)) for index in range(len(events))]


def test_same_arguments_generate_the_same_bytes() -> None:
    first = EventSet.generate(events=2000, seed=3, start=START, end=END)
    second = EventSet.generate(events=2000, seed=3, start=START, end=END)

    assert [first.render(i) for i in range(2000)] == [second.render(i) for i in range(2000)]


def test_another_seed_generates_other_events() -> None:
    first = EventSet.generate(events=200, seed=3, start=START, end=END)
    second = EventSet.generate(events=200, seed=4, start=START, end=END)

    assert not {first.entry_id(i) for i in range(200)} & {second.entry_id(i) for i in range(200)}


def test_rendering_an_event_twice_gives_the_same_bytes(events: EventSet) -> None:
    assert events.render(17) == events.render(17)


def test_events_are_stored_newest_first(events: EventSet) -> None:
    dates = [events.date_create(index) for index in range(len(events))]

    assert dates == sorted(dates, reverse=True)


def test_events_fall_on_the_first_and_the_last_second_of_the_span(events: EventSet) -> None:
    assert len(events.index_range(START, START)) >= 2
    assert len(events.index_range(END - 1, END - 1)) >= 2
    assert len(events.index_range(START - 86_400, START - 1)) == 0
    assert len(events.index_range(END, END + 86_400)) == 0


def test_a_fifth_of_the_events_come_in_bursts_sharing_one_second(events: EventSet) -> None:
    per_second = Counter(events.date_create(index) for index in range(len(events)))
    in_bursts = sum(count for count in per_second.values() if count >= 10)

    assert max(per_second.values()) >= 10
    assert 0.15 <= in_bursts / len(events) <= 0.3


def test_entries_carry_the_fields_of_the_api(entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        assert {"id", "date_create", "action", "actor", "entity", "context"} <= entry.keys()
        assert entry["actor"]["type"] == "user"
        assert {"id", "name", "email", "team"} <= entry["actor"]["user"].keys()
        entity_type = entry["entity"]["type"]
        assert {"id", "name"} <= entry["entity"][entity_type].keys()
        assert {"location", "ua", "ip_address", "session_id"} <= entry["context"].keys()
        assert {"type", "id", "name", "domain"} <= entry["context"]["location"].keys()


def test_entries_have_type_specific_entity_fields(entries: list[dict[str, Any]]) -> None:
    required = {
        "channel": {"privacy", "is_shared", "is_org_shared"},
        "app": {"is_distributed", "is_directory_approved", "scopes"},
        "file": {"filetype", "title"},
        "user": {"email", "team"},
        "workspace": {"domain"},
        "enterprise": {"domain"},
    }
    seen = {entry["entity"]["type"]: entry["entity"][entry["entity"]["type"]] for entry in entries}

    assert seen.keys() == required.keys()
    for entity_type, fields in required.items():
        assert fields <= seen[entity_type].keys(), entity_type


def test_entries_use_many_realistic_actions(entries: list[dict[str, Any]]) -> None:
    actions = Counter(entry["action"] for entry in entries)

    assert len(actions) >= 10
    assert {"user_login", "file_downloaded", "user_channel_join", "app_installed"} <= actions.keys()
    assert actions.most_common(1)[0][0] == "user_login"


def test_entries_come_from_a_few_dozen_actors(entries: list[dict[str, Any]]) -> None:
    actors = {entry["actor"]["user"]["id"] for entry in entries}

    assert 24 <= len(actors) <= 100


def test_some_entries_carry_details_and_some_unknown_fields(entries: list[dict[str, Any]]) -> None:
    with_details = [entry for entry in entries if "details" in entry]
    with_unknown_top = [entry for entry in entries if entry.get("schema_version") == 2]
    with_unknown_nested = [entry for entry in entries if "client_info" in entry["context"]]

    assert 0 < len(with_details) < len(entries) / 2
    assert 0 < len(with_unknown_top) < len(entries) / 5
    assert 0 < len(with_unknown_nested) < len(entries) / 5


def test_ids_are_unique_version_4_uuids(entries: list[dict[str, Any]]) -> None:
    ids = [entry["id"] for entry in entries]

    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(entry_id).version == 4 for entry_id in ids)


def test_late_events_become_visible_after_their_delay() -> None:
    events = EventSet.generate(events=2000, seed=1, start=START, end=END, late_fraction=0.1, late_delay=900)
    late = [index for index in range(len(events)) if events.is_late(index)]

    assert 100 <= len(late) <= 300
    assert all(events.visible_at(index) == events.date_create(index) + 900 for index in late)
    on_time = (index for index in range(len(events)) if not events.is_late(index))
    assert all(events.visible_at(index) == events.date_create(index) for index in on_time)


def test_unknown_action_filter_is_refused(events: EventSet) -> None:
    with pytest.raises(ValueError, match="teleported"):
        events.compile_filter(action="user_login,teleported")


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        to_unix_seconds(datetime(2026, 1, 1))


def test_aware_datetimes_round_up_to_whole_seconds() -> None:
    moment = datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=timezone.utc)

    assert to_unix_seconds(moment) == START + 1


def test_an_empty_span_is_refused() -> None:
    with pytest.raises(ValueError, match="must be after start"):
        EventSet.generate(events=10, seed=1, start=END, end=START)


def test_no_events_is_a_valid_event_set() -> None:
    events = EventSet.generate(events=0, seed=1, start=START, end=END)

    assert len(events) == 0
    assert len(events.index_range(START, END)) == 0


def test_default_span_is_the_three_whole_utc_days_before_today() -> None:
    start, end = default_span(date(2026, 1, 4))

    assert (start, end) == (START, START + 3 * 86_400)
    assert timedelta(seconds=end - start) == timedelta(days=3)


@pytest.mark.slow
def test_a_million_events_build_in_seconds_and_little_memory() -> None:
    # A fresh interpreter, so the peak RSS is this build's and nothing else's.
    script = (
        "import resource, time\n"
        "from airflow_provider_slack_audit.testing import EventSet\n"
        "began = time.perf_counter()\n"
        f"events = EventSet.generate(events=1_000_000, seed=1, start={START}, end={START + 3 * 86_400})\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "print(time.perf_counter() - began, peak, len(events))\n"
    )
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout

    seconds, peak_rss, count = output.split()
    assert int(count) == 1_000_000
    assert float(seconds) < 30
    assert int(peak_rss) < 1.5 * 1024**3
