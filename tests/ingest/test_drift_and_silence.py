"""Drift (new actions and keys), the daily API snapshot, silence and volume, against the fake server."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest

from airflow_provider_slack_audit.client import AsyncAuditLogsClient, AuditLogsResponse
from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.monitor import judge_silence
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.registry import (
    MAX_REGISTRY_NAMES,
    SAMPLE_PER_PAGE,
    SUMMARY_EXAMPLES,
    sample_positions,
)
from airflow_provider_slack_audit.ingest.spec import IngestSpec, IngestSummary
from airflow_provider_slack_audit.testing import FakeAuditLogsServer

DAY0 = datetime(2026, 1, 4, tzinfo=timezone.utc)
DAYS = 4
# Long after every window: nothing waits for the settle lag, and the snapshot's day is fixed.
NOW = DAY0 + timedelta(days=30)
NEW_ACTION = "slack_ai_summary_generated"
NEW_DETAILS_KEY = "acting_agent_kind"
# What the summary (XCom, trigger event, asset-event extra) may weigh whatever the drift.
MAX_SUMMARY_BYTES = 8 * 1024


@pytest.fixture
async def server() -> AsyncIterator[FakeAuditLogsServer]:
    async with FakeAuditLogsServer(events=2400, seed=5, start=DAY0, end=DAY0 + timedelta(days=DAYS)) as fake:
        yield fake


class InjectingClient(AsyncAuditLogsClient):
    """The real client; the first page of each query also carries ``extra`` entries (newest second)."""

    def __init__(self, base_url: str, extra: Iterable[dict[str, Any]] = ()) -> None:
        super().__init__("xoxp-test", base_url=base_url)
        self.extra = list(extra)

    async def pages(self, **query: Any) -> AsyncIterator[AuditLogsResponse]:
        first = True
        async for response in super().pages(**query):
            if first and self.extra:
                response = _with_entries(response, self.extra)
            first = False
            yield response


def _with_entries(response: AuditLogsResponse, extra: list[dict[str, Any]]) -> AuditLogsResponse:
    body = msgspec.json.decode(response.content)
    newest = body["entries"][0]["date_create"]
    body["entries"] = [{**entry, "date_create": newest} for entry in extra] + body["entries"]
    changed = AuditLogsResponse(
        url=response.url, status_code=200, raw_body=msgspec.json.encode(body), headers=response.headers
    )
    changed.requests, changed.wait_seconds = response.requests, response.wait_seconds
    return changed


def drifting_entries() -> list[dict[str, Any]]:
    """A new action on a new (huddle) entity, and a known action with a new details key."""
    actor = {"type": "user", "user": {"id": "W0NEW", "name": "new", "email": "n@example.com", "team": "E1"}}
    context = {"location": {"type": "enterprise", "id": "E1", "name": "Acme", "domain": "acme"}, "ua": "x"}
    return [
        {
            "id": "0b7f7a53-0000-4000-8000-000000000001",
            "action": NEW_ACTION,
            "actor": actor,
            "entity": {"type": "huddle", "huddle": {"id": "R1"}},
            "context": context,
        },
        {
            "id": "0b7f7a53-0000-4000-8000-000000000002",
            "action": "user_login",
            "actor": actor,
            "entity": {"type": "user", "user": actor["user"]},
            "context": context,
            "details": {NEW_DETAILS_KEY: "bot"},
        },
    ]


async def land(
    client: AsyncAuditLogsClient, tmp_path: Path, day: int, *, now: datetime = NOW, **kwargs: Any
) -> IngestSummary:
    start = DAY0 + timedelta(days=day)
    spec = IngestSpec(
        window=Window(start, start + timedelta(days=1)),
        interval=timedelta(hours=6),
        destination=f"file://{tmp_path}/landing",
        settle_lag=timedelta(0),
        limit=100,  # pages under SAMPLE_PER_PAGE: every entry's names are read
        **kwargs,
    )
    return await ingest_window(client, spec, now=lambda: now)


def registry(tmp_path: Path, name: str = "schema.json") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "landing" / "_registry" / name).read_text())
    return data


def warnings_about(caplog: pytest.LogCaptureFixture, word: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and word in r.getMessage()]


# Drift ----------------------------------------------------------------------------------------------


async def test_the_first_window_records_a_baseline_and_warns_about_nothing(
    server: FakeAuditLogsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    summary = await land(InjectingClient(server.base_url, drifting_entries()), tmp_path, 0)

    assert warnings_about(caplog, "Drift") == []
    assert summary.drift == {
        "new_actions": [],
        "new_keys": [],
        "new_listed_actions": [],
        "counts": {"new_actions": 0, "new_keys": 0, "new_listed_actions": 0},
        "truncated": False,
        "baseline": True,
    }
    known = registry(tmp_path)
    assert NEW_ACTION in known["actions"] and "user_login" in known["actions"]
    assert {"id", "date_create", "action", "context.location", f"details.{NEW_DETAILS_KEY}"} <= set(
        known["keys"]
    )
    assert known["keys"]["entity.huddle"] == {
        "first_seen": "20260104T000000Z_20260105T000000Z",
        "action": NEW_ACTION,
    }


async def test_a_day_with_a_new_action_and_a_new_details_key_logs_one_warning_naming_them(
    server: FakeAuditLogsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await land(InjectingClient(server.base_url), tmp_path, 0)
    caplog.clear()

    summary = await land(InjectingClient(server.base_url, drifting_entries()), tmp_path, 1)

    [warning] = warnings_about(caplog, "Drift")
    assert NEW_ACTION in warning and f"details.{NEW_DETAILS_KEY} (in user_login)" in warning
    assert summary.drift is not None
    assert summary.drift["new_actions"] == [NEW_ACTION]
    assert {f"details.{NEW_DETAILS_KEY}", "entity.huddle"} <= set(summary.drift["new_keys"])
    assert registry(tmp_path)["actions"][NEW_ACTION] == {"first_seen": "20260105T000000Z_20260106T000000Z"}
    assert registry(tmp_path)["keys"][f"details.{NEW_DETAILS_KEY}"]["action"] == "user_login"


async def test_names_seen_before_are_not_reported_again(
    server: FakeAuditLogsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await land(InjectingClient(server.base_url), tmp_path, 0)
    await land(InjectingClient(server.base_url, drifting_entries()), tmp_path, 1)
    caplog.clear()

    summary = await land(InjectingClient(server.base_url, drifting_entries()), tmp_path, 2)

    assert warnings_about(caplog, "Drift") == []
    assert summary.drift is not None and summary.drift["new_actions"] == summary.drift["new_keys"] == []


async def test_registry_updates_merge_with_what_other_windows_recorded(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    await land(InjectingClient(server.base_url), tmp_path, 0)
    path = tmp_path / "landing" / "_registry" / "schema.json"
    # Another writer recorded a name meanwhile (a concurrent window under the same destination).
    document = json.loads(path.read_text())
    document["actions"]["recorded_elsewhere"] = {"first_seen": "elsewhere"}
    path.write_text(json.dumps(document))

    await land(InjectingClient(server.base_url, drifting_entries()), tmp_path, 1)

    actions = registry(tmp_path)["actions"]
    assert actions["recorded_elsewhere"] == {"first_seen": "elsewhere"}
    assert NEW_ACTION in actions


def flooding_entry(prefix: str, keys: int) -> dict[str, Any]:
    """A known action whose ``details`` carries ``keys`` new keys (a field keyed by ids, say)."""
    [entry] = [e for e in drifting_entries() if e["action"] == "user_login"]
    details = {f"{prefix}_{i}": i for i in range(keys)}
    return {**entry, "id": f"0b7f7a53-0000-4000-8000-{prefix}", "details": details}


async def test_ten_thousand_new_keys_keep_the_summary_and_the_asset_extra_small(
    server: FakeAuditLogsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await land(InjectingClient(server.base_url), tmp_path, 0)

    flood = [flooding_entry("00000000aaaa", 10_000)]
    summary = await land(InjectingClient(server.base_url, flood), tmp_path, 1)

    drift = summary.drift
    assert drift is not None
    # The XCom, the trigger event and the asset event's extra all carry the summary's drift.
    assert len(json.dumps(summary.to_json())) < MAX_SUMMARY_BYTES
    assert drift["counts"]["new_keys"] == 10_000
    assert len(drift["new_keys"]) == SUMMARY_EXAMPLES and drift["truncated"] is True
    assert set(drift["new_keys"]) <= {f"details.00000000aaaa_{i}" for i in range(10_000)}
    [warning] = warnings_about(caplog, "Drift")
    assert "10000 new key(s)" in warning and len(warning) < 2_000


async def test_the_registry_stops_growing_at_its_cap_and_counts_what_it_dropped(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    await land(InjectingClient(server.base_url), tmp_path, 0)
    baseline = registry(tmp_path)["keys"]

    for day, prefix in ((1, "00000000aaaa"), (2, "00000000bbbb")):
        await land(InjectingClient(server.base_url, [flooding_entry(prefix, 10_000)]), tmp_path, day)

    known = registry(tmp_path)
    assert len(known["keys"]) == MAX_REGISTRY_NAMES
    assert known["dropped"] == {"keys": 20_000 - (MAX_REGISTRY_NAMES - len(baseline))}
    assert (tmp_path / "landing" / "_registry" / "schema.json").stat().st_size < 256 * 1024
    # What the registry held before it filled up stays, as it was.
    assert {key: known["keys"][key] for key in baseline} == baseline


def test_a_page_contributes_a_bounded_spread_sample_including_its_first_and_last_entry() -> None:
    positions = list(sample_positions(9999))

    assert len(positions) == SAMPLE_PER_PAGE and positions[0] == 0 and positions[-1] == 9998
    assert list(sample_positions(50)) == list(range(50))


# The API snapshot --------------------------------------------------------------------------------------


async def test_the_api_snapshot_is_landed_once_a_day_and_its_requests_counted(
    server: FakeAuditLogsServer, tmp_path: Path
) -> None:
    client = InjectingClient(server.base_url)
    requests = []
    for day, now in ((0, NOW), (1, NOW), (2, NOW + timedelta(days=1))):
        before = len(server.logs_requests())
        summary = await land(client, tmp_path, day, api_snapshot=True, now=now)
        requests.append(summary.requests - (len(server.logs_requests()) - before))

    assert requests == [2, 0, 2]  # actions + schemas on each new day, counted in the summary
    paths = [request.path.rsplit("/", 1)[1] for request in server.requests if "logs" not in request.path]
    assert sorted(paths) == ["actions", "actions", "schemas", "schemas"]
    snapshots = tmp_path / "landing" / "_registry"
    for day in (NOW, NOW + timedelta(days=1)):
        name = f"{day.date().isoformat()}.json"
        assert json.loads((snapshots / "actions" / name).read_bytes())["actions"]
        assert json.loads((snapshots / "schemas" / name).read_bytes())["schemas"]
    assert "user_login" in registry(tmp_path)["listed_actions"]


async def test_the_bare_pipeline_lands_no_snapshot(server: FakeAuditLogsServer, tmp_path: Path) -> None:
    await land(InjectingClient(server.base_url), tmp_path, 0)

    assert all("logs" in request.path for request in server.requests)


# Silence and volume -------------------------------------------------------------------------------------


async def test_an_empty_day_after_normal_days_is_flagged_with_a_warning(
    server: FakeAuditLogsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = InjectingClient(server.base_url)
    for day in range(DAYS):
        normal = await land(client, tmp_path, day)
        assert normal.silence is not None and not normal.silence["flagged"]
    caplog.clear()

    empty = await land(client, tmp_path, DAYS)  # after the server's last event

    assert empty.events == 0
    assert empty.silence is not None
    assert (empty.silence["flagged"], empty.silence["reason"], empty.silence["history"]) == (True, "empty", 4)
    [warning] = warnings_about(caplog, "Silence")
    assert "0 events where the trailing median expects" in warning


async def test_a_volume_collapse_is_flagged(server: FakeAuditLogsServer, tmp_path: Path) -> None:
    client = InjectingClient(server.base_url)
    for day in range(DAYS - 1):
        await land(client, tmp_path, day)
    # The same day from an org that returns far fewer events (a narrower token scope, say).
    async with FakeAuditLogsServer(events=40, seed=6, start=DAY0, end=DAY0 + timedelta(days=DAYS)) as quiet:
        collapsed = await land(InjectingClient(quiet.base_url), tmp_path, DAYS - 1)

    assert collapsed.events > 0
    assert collapsed.silence is not None
    assert (collapsed.silence["flagged"], collapsed.silence["reason"]) == (True, "low_volume")
    assert collapsed.events < 0.5 * collapsed.silence["expected"]
    assert "20260107T000000Z_20260108T000000Z" in registry(tmp_path, "volume.json")["windows"]


async def test_a_window_reads_and_writes_the_volume_registry_once(
    server: FakeAuditLogsServer, tmp_path: Path, record_reads: Callable[[], list[str]]
) -> None:
    client = InjectingClient(server.base_url)
    await land(client, tmp_path, 0)
    reads = record_reads()

    await land(client, tmp_path, 1)

    assert reads.count("volume.json") == 1
    assert len(registry(tmp_path, "volume.json")["windows"]) == 2


def test_the_trailing_median_is_a_rate_so_windows_of_other_lengths_compare() -> None:
    hours = [
        {
            "start": f"2026-01-04T{h:02d}:00:00+00:00",
            "end": f"2026-01-04T{h + 1:02d}:00:00+00:00",
            "events": 100,
        }
        for h in range(7)
    ]
    day = Window(datetime(2026, 1, 5, tzinfo=timezone.utc), datetime(2026, 1, 6, tzinfo=timezone.utc))

    verdict = judge_silence(day, 1000, hours, 0.5, 7)

    assert (verdict["expected"], verdict["flagged"], verdict["reason"]) == (2400.0, True, "low_volume")
    assert not judge_silence(day, 1300, hours, 0.5, 7)["flagged"]


def test_volume_is_judged_only_once_a_few_earlier_windows_exist() -> None:
    history = [{"start": "2026-01-03T00:00:00+00:00", "end": "2026-01-04T00:00:00+00:00", "events": 900}]
    day = Window(datetime(2026, 1, 4, tzinfo=timezone.utc), datetime(2026, 1, 5, tzinfo=timezone.utc))

    assert not judge_silence(day, 1, history, 0.5, 7)["flagged"]
    assert judge_silence(day, 0, [], 0.5, 7)["reason"] == "empty"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"silence_fraction": 1.5}, "silence_fraction must be a number between 0 and 1"),
        ({"silence_fraction": "half"}, "silence_fraction must be a number between 0 and 1"),
        ({"silence_lookback": 0}, "silence_lookback must be an int between 1 and 366"),
        ({"fail_on_silence": "yes"}, "fail_on_silence must be True or False"),
    ],
)
async def test_bad_silence_settings_fail_before_any_request(
    server: FakeAuditLogsServer, tmp_path: Path, setting: dict[str, Any], message: str
) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        await land(InjectingClient(server.base_url), tmp_path, 0, **setting)

    assert server.requests == []


def test_the_new_settings_round_trip_through_json() -> None:
    spec = IngestSpec(
        window=Window(DAY0, DAY0 + timedelta(days=1)),
        destination="file:///x",
        silence_fraction=0.25,
        silence_lookback=14,
        fail_on_silence=True,
        api_snapshot=True,
    )

    assert IngestSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
