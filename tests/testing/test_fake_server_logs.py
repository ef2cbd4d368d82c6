"""The fake server's ``logs`` endpoint follows the Audit Logs API: order, bounds, pages, cursors, errors."""

from __future__ import annotations

import asyncio
import base64
import itertools
import urllib.request
from collections import Counter
from typing import Any

import aiohttp
import msgspec
import pytest

from airflow_provider_slack_audit.testing import FakeAuditLogsServer, ManualClock

from support.fake_api import END, START, TOKEN, Fetch, ReadAll, fetch_from


def _dates(entries: list[dict[str, Any]]) -> list[int]:
    return [entry["date_create"] for entry in entries]


def _ids(pages: list[list[dict[str, Any]]]) -> list[str]:
    return [entry["id"] for page in pages for entry in page]


async def test_entries_come_newest_first(fetch: Fetch) -> None:
    entries = (await fetch(oldest=START, latest=END - 1, limit=500)).json()["entries"]

    assert _dates(entries) == sorted(_dates(entries), reverse=True)


async def test_oldest_and_latest_are_both_inclusive(fetch: Fetch, server: FakeAuditLogsServer) -> None:
    on_first_second = (await fetch(oldest=START, latest=START)).json()["entries"]
    on_last_second = (await fetch(oldest=END - 1, latest=END - 1, limit=9999)).json()["entries"]

    assert on_first_second and set(_dates(on_first_second)) == {START}
    assert on_last_second and set(_dates(on_last_second)) == {END - 1}
    assert {entry["id"] for entry in on_last_second} == server.expected_ids(END - 1, END - 1)


async def test_adjacent_windows_share_no_entry(read_all: ReadAll, server: FakeAuditLogsServer) -> None:
    middle = START + 43_200
    first = _ids(await read_all(oldest=START, latest=middle - 1))
    second = _ids(await read_all(oldest=middle, latest=END - 1))

    assert not set(first) & set(second)
    assert set(first) | set(second) == server.expected_ids(START, END - 1)


async def test_page_grows_to_finish_the_second_of_its_last_entry(
    fetch: Fetch, server: FakeAuditLogsServer
) -> None:
    in_last_second = len(server.expected_ids(END - 1, END - 1))

    entries = (await fetch(oldest=START, latest=END - 1, limit=1)).json()["entries"]

    assert in_last_second > 1
    assert len(entries) == in_last_second


async def test_filtered_page_grows_to_finish_the_second_of_its_last_entry(
    fetch: Fetch, server: FakeAuditLogsServer
) -> None:
    last_second = [msgspec.json.decode(entry) for entry in server.expected_entries(END - 1, END - 1)]
    action, count = Counter(entry["action"] for entry in last_second).most_common(1)[0]

    entries = (await fetch(oldest=START, latest=END - 1, limit=1, action=action)).json()["entries"]

    assert count > 1
    assert [entry["action"] for entry in entries] == [action] * count
    assert set(_dates(entries)) == {END - 1}


async def test_pages_never_split_a_second(read_all: ReadAll) -> None:
    pages = await read_all(oldest=START, latest=END - 1, limit=7)

    for page, next_page in itertools.pairwise(pages):
        assert page[-1]["date_create"] != next_page[0]["date_create"]


async def test_default_limit_is_200(fetch: Fetch) -> None:
    entries = (await fetch(oldest=START, latest=END - 1)).json()["entries"]

    assert len(entries) >= 200
    assert set(_dates(entries[199:])) == {entries[199]["date_create"]}


async def test_limit_above_9999_is_clamped_to_9999(
    session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    async with FakeAuditLogsServer(events=12_000, seed=3, start=START, end=END, clock=clock) as big:
        entries = (await fetch_from(session, big, oldest=START, latest=END - 1, limit=50_000)).json()[
            "entries"
        ]

    assert 9999 <= len(entries) < 12_000
    assert set(_dates(entries[9998:])) == {entries[9998]["date_create"]}


async def test_cursor_pagination_returns_every_id_exactly_once(
    read_all: ReadAll, server: FakeAuditLogsServer
) -> None:
    pages = await read_all(oldest=START, latest=END - 1, limit=100)
    ids = _ids(pages)

    assert len(pages) > 10
    assert len(ids) == len(set(ids))
    assert set(ids) == server.expected_ids(START, END - 1)


async def test_last_page_has_an_empty_next_cursor(fetch: Fetch) -> None:
    body = (await fetch(oldest=START, latest=START + 60, limit=9999)).json()

    assert body["response_metadata"] == {"next_cursor": ""}


async def test_success_bodies_have_no_ok_field(fetch: Fetch) -> None:
    body = (await fetch(oldest=START, latest=END - 1, limit=5)).json()

    assert set(body) == {"entries", "response_metadata"}


async def test_served_entries_are_the_oracles_bytes_in_order(
    fetch: Fetch, server: FakeAuditLogsServer
) -> None:
    reply = await fetch(oldest=START, latest=START + 3600, limit=9999)

    expected = b"[" + b",".join(server.expected_entries(START, START + 3600)) + b"]"
    assert msgspec.json.decode(reply.body)["entries"] == msgspec.json.decode(expected)
    assert b",".join(server.expected_entries(START, START + 3600)) in reply.body


async def test_filters_resent_with_the_cursor_apply_to_every_page(
    read_all: ReadAll, server: FakeAuditLogsServer
) -> None:
    pages = await read_all(oldest=START, latest=END - 1, limit=50, action="user_login,file_downloaded")
    entries = [entry for page in pages for entry in page]

    assert len(pages) > 3
    assert {entry["action"] for entry in entries} == {"user_login", "file_downloaded"}
    assert set(_ids(pages)) == server.expected_ids(START, END - 1, action="user_login,file_downloaded")


async def test_cursor_carries_a_position_not_the_query(fetch: Fetch) -> None:
    first = (await fetch(oldest=START, latest=END - 1, limit=100)).json()
    boundary = first["entries"][-1]["date_create"]

    cursor = first["response_metadata"]["next_cursor"]

    second = await fetch(oldest=START, latest=END - 1, limit=100, action="file_uploaded", cursor=cursor)

    # The new filter applies from the old position: as if the filtered read began after `boundary`.
    fresh = await fetch(oldest=START, latest=boundary - 1, limit=100, action="file_uploaded")
    assert second.json()["entries"] and second.json()["entries"] == fresh.json()["entries"]
    assert {entry["action"] for entry in second.json()["entries"]} == {"file_uploaded"}


@pytest.mark.parametrize("kind", ["actor", "entity"])
async def test_actor_and_entity_filters_select_their_events(
    read_all: ReadAll, server: FakeAuditLogsServer, kind: str
) -> None:
    first_entry = msgspec.json.decode(server.expected_entries(START, END - 1)[0])
    value = first_entry["actor"]["user"]["id"] if kind == "actor" else _entity_id(first_entry)

    ids = _ids(await read_all(oldest=START, latest=END - 1, **{kind: value}))

    assert first_entry["id"] in ids
    assert set(ids) == server.expected_ids(START, END - 1, **{kind: value})
    assert len(ids) < len(server.expected_ids(START, END - 1))


def _entity_id(entry: dict[str, Any]) -> str:
    entity = entry["entity"]
    return entity[entity["type"]]["id"]


async def test_unknown_actor_gives_an_empty_page(fetch: Fetch) -> None:
    body = (await fetch(oldest=START, latest=END - 1, actor="WNOSUCHUSER")).json()

    assert body == {"entries": [], "response_metadata": {"next_cursor": ""}}


async def test_known_action_without_events_gives_an_empty_page(fetch: Fetch) -> None:
    reply = await fetch(oldest=START, latest=END - 1, action="barrier_deleted")

    assert reply.status == 200
    assert reply.json()["entries"] == []


def _tamper(cursor: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[5] ^= 0x01  # move the position by one second, keep the signature
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@pytest.mark.parametrize("make_bad", [_tamper, lambda cursor: "not-a-cursor", lambda cursor: cursor[:-2]])
async def test_altered_or_garbage_cursor_is_invalid_cursor(fetch: Fetch, make_bad: Any) -> None:
    cursor = (await fetch(oldest=START, latest=END - 1, limit=10)).json()["response_metadata"]["next_cursor"]

    reply = await fetch(oldest=START, latest=END - 1, limit=10, cursor=make_bad(cursor))

    assert (reply.status, reply.json()) == (400, {"ok": False, "error": "invalid_cursor"})


async def test_cursor_of_another_server_is_invalid_cursor(
    fetch: Fetch, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    async with FakeAuditLogsServer(events=3000, seed=7, start=START, end=END, clock=clock) as other:
        foreign = (await fetch_from(session, other, oldest=START, latest=END - 1, limit=10)).json()

    reply = await fetch(oldest=START, latest=END - 1, cursor=foreign["response_metadata"]["next_cursor"])

    assert reply.json()["error"] == "invalid_cursor"


async def test_expire_cursor_uses_fails_only_the_chosen_cursor_use(
    session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    async with FakeAuditLogsServer(
        events=3000, seed=7, start=START, end=END, clock=clock, expire_cursor_uses={2}
    ) as fake:
        first = (await fetch_from(session, fake, oldest=START, latest=END - 1, limit=10)).json()
        cursor = first["response_metadata"]["next_cursor"]
        uses = [
            await fetch_from(session, fake, oldest=START, latest=END - 1, limit=10, cursor=cursor)
            for _ in range(3)
        ]

    assert [reply.status for reply in uses] == [200, 400, 200]
    assert uses[1].json() == {"ok": False, "error": "invalid_cursor"}
    assert fake.cursor_uses == 3


@pytest.mark.parametrize(
    ("request_kwargs", "status", "error"),
    [
        pytest.param({"token": None}, 401, "missing_authentication", id="no-token"),
        pytest.param({"token": "xoxp-wrong"}, 401, "invalid_authentication", id="unknown-token"),
        pytest.param({"token": "xoxp-nofeature"}, 403, "feature_not_enabled", id="feature-off"),
        pytest.param({"token": "xoxp-team"}, 403, "team_not_authorized", id="team-denied"),
        pytest.param({"token": "xoxp-user"}, 403, "user_not_authorized", id="user-denied"),
        pytest.param({"token": "xoxp-workspace"}, 400, "invalid_workspace", id="workspace"),
        pytest.param({"oldest": END, "latest": START}, 400, "invalid_range", id="oldest-after-latest"),
        pytest.param({"oldest": END + 7200, "latest": END + 9000}, 400, "invalid_range", id="future"),
        pytest.param({"oldest": 1_500_000_000, "latest": 1_510_000_000}, 400, "invalid_range", id="pre-2018"),
        pytest.param({"oldest": "yesterday"}, 400, "invalid_range", id="oldest-not-int"),
        pytest.param({"latest": "1.5"}, 400, "invalid_range", id="latest-not-int"),
        pytest.param({"action": "user_login,teleported"}, 400, "invalid_action", id="unknown-action"),
        pytest.param({"action": ",".join(["user_login"] * 31)}, 400, "invalid_action", id="31-actions"),
        pytest.param({"limit": "many"}, 400, "invalid_arguments", id="limit-not-int"),
        pytest.param({"limit": 0}, 400, "invalid_arguments", id="limit-zero"),
        pytest.param({"endpoint": "log"}, 404, "bad_endpoint", id="unknown-endpoint"),
        pytest.param({"endpoint": "logs/extra"}, 404, "bad_endpoint", id="nested-path"),
        pytest.param({"method": "POST"}, 405, "method_not_allowed", id="post"),
        pytest.param({"method": "DELETE", "endpoint": "schemas"}, 405, "method_not_allowed", id="delete"),
    ],
)
async def test_errors_answer_their_status_and_code(
    session: aiohttp.ClientSession,
    clock: ManualClock,
    request_kwargs: dict[str, Any],
    status: int,
    error: str,
) -> None:
    denied = {
        "xoxp-nofeature": "feature_not_enabled",
        "xoxp-team": "team_not_authorized",
        "xoxp-user": "user_not_authorized",
        "xoxp-workspace": "invalid_workspace",
    }
    async with FakeAuditLogsServer(
        events=100, seed=1, start=START, end=END, clock=clock, denied_tokens=denied
    ) as fake:
        reply = await fetch_from(session, fake, **request_kwargs)

    assert (reply.status, reply.json()) == (status, {"ok": False, "error": error})


async def test_oldest_before_enabled_at_is_clamped_not_refused(
    fetch: Fetch, server: FakeAuditLogsServer
) -> None:
    reply = await fetch(oldest=1_500_000_000, latest=START, limit=9999)

    assert reply.status == 200
    assert {entry["id"] for entry in reply.json()["entries"]} == server.expected_ids(START, START)


async def test_schemas_and_actions_need_no_token(fetch: Fetch) -> None:
    schemas = await fetch("schemas", token=None)
    actions = await fetch("actions", token=None)

    assert schemas.status == actions.status == 200
    schema_types = {schema["type"] for schema in schemas.json()["schemas"]}
    assert {"user", "channel", "file", "app", "workspace", "enterprise"} <= schema_types
    assert "user_login" in actions.json()["actions"]["user"]
    assert "ok" not in schemas.json() and "ok" not in actions.json()


async def test_late_events_appear_once_the_clock_passes_their_delay(session: aiohttp.ClientSession) -> None:
    clock = ManualClock(END + 60)
    async with FakeAuditLogsServer(
        events=3000, seed=5, start=START, end=END, clock=clock, late_fraction=0.1, late_delay=3600
    ) as fake:
        before, expected_before = await _read_ids(session, fake), fake.expected_ids(START, END - 1)
        pending = fake.pending_ids(START, END - 1)
        clock.advance(3600)
        after = await _read_ids(session, fake)

    assert pending and not pending & before
    assert before == expected_before
    assert after == before | pending == fake.expected_ids(START, END - 1)
    assert fake.pending_ids(START, END - 1) == set()


async def _read_ids(session: aiohttp.ClientSession, fake: FakeAuditLogsServer) -> set[str]:
    ids: set[str] = set()
    cursor = None
    while True:
        body = (
            await fetch_from(session, fake, oldest=START, latest=END - 1, limit=500, cursor=cursor)
        ).json()
        ids.update(entry["id"] for entry in body["entries"])
        cursor = body["response_metadata"]["next_cursor"]
        if not cursor:
            return ids


async def test_events_of_the_future_are_not_served(session: aiohttp.ClientSession) -> None:
    clock = ManualClock(START + 3600)
    async with FakeAuditLogsServer(events=3000, seed=7, start=START, end=END, clock=clock) as fake:
        entries = (await fetch_from(session, fake, oldest=START, latest=END - 1, limit=9999)).json()[
            "entries"
        ]

    assert entries and max(_dates(entries)) <= START + 3600
    assert {entry["id"] for entry in entries} == fake.expected_ids(START, END - 1)


async def test_request_log_records_the_query_but_never_the_token(
    fetch: Fetch, server: FakeAuditLogsServer
) -> None:
    await fetch(oldest=START, latest=END - 1, limit=5, action="user_login")
    await fetch("schemas", token=None)

    first, second = server.requests
    assert (first.method, first.path, first.status) == ("GET", "/audit/v1/logs", 200)
    assert first.query == {"oldest": str(START), "latest": str(END - 1), "limit": "5", "action": "user_login"}
    assert first.has_authorization and not second.has_authorization
    assert first.time == END + 3600
    assert TOKEN not in repr(server.requests)
    assert server.logs_requests() == [first]


async def test_reset_log_forgets_recorded_requests(fetch: Fetch, server: FakeAuditLogsServer) -> None:
    await fetch(oldest=START, latest=END - 1)
    server.reset_log()
    await fetch("actions")

    assert [request.path for request in server.requests] == ["/audit/v1/actions"]


async def test_servers_with_the_same_seed_serve_identical_bytes(
    session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    bodies = []
    for _ in range(2):
        async with FakeAuditLogsServer(
            events=3000, seed=11, start=START, end=END, clock=clock, cursor_secret=b"shared"
        ) as fake:
            first = await fetch_from(session, fake, oldest=START, latest=END - 1, limit=300)
            cursor = first.json()["response_metadata"]["next_cursor"]
            second = await fetch_from(session, fake, oldest=START, latest=END - 1, limit=300, cursor=cursor)
            bodies.append((first.body, second.body))

    assert bodies[0] == bodies[1]


async def test_pre_rendered_server_serves_the_same_pages(
    session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    served: list[list[bytes]] = []
    for pre_render in (False, True):
        async with FakeAuditLogsServer(
            events=3000, seed=11, start=START, end=END, clock=clock, cursor_secret=b"s", pre_render=pre_render
        ) as fake:
            bodies = []
            for params in ({"limit": 250}, {"limit": 40, "action": "file_downloaded"}, {"limit": 1}):
                reply = await fetch_from(session, fake, oldest=START, latest=END - 1, **params)
                cursor = reply.json()["response_metadata"]["next_cursor"]
                follow = await fetch_from(
                    session, fake, oldest=START, latest=END - 1, cursor=cursor, **params
                )
                bodies += [reply.body, follow.body]
            served.append(bodies)

    assert served[0] == served[1]


async def test_concurrent_readers_get_consistent_pages(fetch: Fetch, server: FakeAuditLogsServer) -> None:
    replies = await asyncio.gather(*(fetch(oldest=START, latest=END - 1, limit=100) for _ in range(8)))

    assert len({reply.body for reply in replies}) == 1
    assert Counter(reply.status for reply in replies) == {200: 8}


def test_start_in_thread_serves_synchronous_callers() -> None:
    fake = FakeAuditLogsServer(events=500, seed=2, start=START, end=END, clock=ManualClock(END))
    base_url = fake.start_in_thread()
    try:
        with urllib.request.urlopen(base_url + "actions", timeout=10) as response:  # noqa: S310 (loopback http)
            body = msgspec.json.decode(response.read())
    finally:
        fake.stop()

    assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/audit/v1/")
    assert "user" in body["actions"]
    assert [request.status for request in fake.requests] == [200]


def test_refuses_to_listen_beyond_loopback() -> None:
    fake = FakeAuditLogsServer(events=10, seed=1, start=START, end=END)

    with pytest.raises(ValueError, match="loopback"):
        asyncio.run(fake.start(host="0.0.0.0"))  # noqa: S104 (the point: it must refuse)
