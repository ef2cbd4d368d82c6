"""Large pages are decoded in slices; the result is always the one-pass decode's, whatever the body."""

from __future__ import annotations

import json

import pytest

from airflow_provider_slack_audit.client import SlackAuditLogsApiError
from airflow_provider_slack_audit.client.response import _SLICE_BYTES, AuditLogsResponse, _decode_in_slices


def page_body(entries: list[dict[str, object]], cursor: str = "next") -> bytes:
    body = {"entries": entries, "response_metadata": {"next_cursor": cursor}}
    return json.dumps(body, separators=(",", ":")).encode()


def tricky_entries(count: int, separators_per_entry: int = 1) -> list[dict[str, object]]:
    """Entries whose strings and nested values hold the ``},{`` the slicer cuts at."""
    return [
        {
            "id": f"id-{i}",
            "date_create": 1_700_000_000 - i,
            "details": {"text": "a},{b" * separators_per_entry, "nested": [{"k": "v"}, {"k": i}]},
            "pad": "x" * 900,
        }
        for i in range(count)
    ]


def compact(entry: dict[str, object]) -> bytes:
    return json.dumps(entry, separators=(",", ":")).encode()


@pytest.mark.parametrize("count", [1, 700, 3000])
def test_a_sliced_decode_equals_the_one_pass_decode(count: int) -> None:
    entries = tricky_entries(count)
    raws, keys, cursor, ok = _decode_in_slices(page_body(entries))

    assert [bytes(raw) for raw in raws] == [compact(e) for e in entries]
    assert [(k.id, k.date_create) for k in keys] == [(f"id-{i}", 1_700_000_000 - i) for i in range(count)]
    assert cursor == "next"
    assert ok is None


@pytest.mark.parametrize("where", ["first", "last"])
def test_a_page_of_many_slices_saying_ok_false_is_an_error(where: str) -> None:
    """The decode reads a top-level ``ok`` before the entries (decoded on their own) or after them
    (in the last slice)."""
    entries = tricky_entries(3000)
    listed = {"entries": entries, "response_metadata": {"next_cursor": "next"}}
    body = {"ok": False, "error": "invalid_auth", **listed} if where == "first" else {**listed, "ok": False}
    raw_body = json.dumps(body, separators=(",", ":")).encode()
    assert len(raw_body) > 3 * _SLICE_BYTES
    assert _decode_in_slices(raw_body)[3] is False
    page = AuditLogsResponse(url="http://127.0.0.1:1/logs", status_code=200, raw_body=raw_body, headers={})
    with pytest.raises(SlackAuditLogsApiError, match="ok: false") as info:
        page.raw_page()
    assert info.value.error == ("invalid_auth" if where == "first" else None)


def test_a_page_saying_ok_true_is_a_page() -> None:
    entries = tricky_entries(3000)
    body = json.dumps({"ok": True, "entries": entries, "response_metadata": {}}, separators=(",", ":"))
    page = AuditLogsResponse(url="u", status_code=200, raw_body=body, headers={}).raw_page()
    assert len(page.entries) == 3000


def test_a_body_too_hostile_to_slice_is_decoded_in_one_pass() -> None:
    entries = tricky_entries(3000, separators_per_entry=40)
    page = AuditLogsResponse(url="u", status_code=200, raw_body=page_body(entries), headers={}).raw_page()

    assert [bytes(e.raw) for e in page.entries] == [compact(e) for e in entries]
    assert page.next_cursor == "next"


def test_a_page_with_metadata_before_its_entries_keeps_its_cursor() -> None:
    entries = tricky_entries(2000)
    body = json.dumps({"response_metadata": {"next_cursor": "c2"}, "entries": entries}, separators=(",", ":"))
    page = AuditLogsResponse(url="u", status_code=200, raw_body=body, headers={}).raw_page()

    assert page.next_cursor == "c2"
    assert [e.id for e in page.entries] == [f"id-{i}" for i in range(2000)]


@pytest.mark.parametrize("offset", range(-4, 2))
def test_an_ok_false_body_is_an_error_wherever_the_block_scan_cuts_it(offset: int) -> None:
    body = b"{" + b" " * (_SLICE_BYTES + offset) + b'"ok": false, "error": "invalid_auth"}'
    response = AuditLogsResponse(url="http://127.0.0.1:1/logs", status_code=200, raw_body=body, headers={})
    with pytest.raises(SlackAuditLogsApiError, match="ok: false"):
        response.validate()


async def test_the_loop_reads_a_page_while_another_is_being_decoded_in_a_thread() -> None:
    """No lock shared by every response is held while a decode hands the GIL over to the loop
    (functools.cached_property holds one before Python 3.12)."""
    import asyncio
    import time

    from airflow_provider_slack_audit.client.blocking import run_blocking

    big = AuditLogsResponse(url="u", status_code=200, raw_body=page_body(tricky_entries(40_000)), headers={})
    small = AuditLogsResponse(url="u", status_code=200, raw_body=page_body(tricky_entries(3)), headers={})
    decoding = asyncio.ensure_future(run_blocking(big.raw_page))
    await asyncio.sleep(0.02)  # the big decode is under way (it takes well over 100 ms)
    assert not decoding.done()
    started = time.perf_counter()
    assert len(small.raw_page().entries) == 3
    read_in = time.perf_counter() - started
    assert len((await decoding).entries) == 40_000
    assert read_in < 0.04, f"the loop waited {read_in:.3f} s for another response's decode"


def test_objects_of_another_top_level_array_never_pass_for_entries() -> None:
    """A cut between two objects of an array after the entries makes valid slices too: they must
    not be read as entries."""
    entries = tricky_entries(100)
    others = [{"id": f"other-{i}", "date_create": 1, "pad": "x" * 300} for i in range(3000)]
    body = json.dumps({"entries": entries, "other": others, "response_metadata": {"next_cursor": "c"}})
    raw_body = body.replace(", ", ",").replace(": ", ":").encode()
    assert len(raw_body) > 3 * _SLICE_BYTES
    page = AuditLogsResponse(url="u", status_code=200, raw_body=raw_body, headers={}).raw_page()
    assert [e.id for e in page.entries] == [f"id-{i}" for i in range(100)]
    assert page.next_cursor == "c"


@pytest.mark.parametrize(
    "head",
    [
        {"warning": "superfluous_charset"},
        # An "entries" key nested in an earlier value is not the page's entries.
        {"meta": {"entries": [{"id": "nested", "date_create": 1}]}, "note": "a } , { in a string"},
    ],
)
def test_a_large_body_with_keys_before_its_entries_is_sliced_from_its_entries(
    head: dict[str, object],
) -> None:
    entries = tricky_entries(3000)
    body = {**head, "entries": entries, "response_metadata": {"next_cursor": "n"}}
    raw_body = json.dumps(body, separators=(",", ":")).encode()
    assert len(raw_body) > 3 * _SLICE_BYTES
    raws, keys, cursor, ok = _decode_in_slices(raw_body)
    assert [bytes(raw) for raw in raws] == [compact(e) for e in entries]
    assert [k.id for k in keys] == [f"id-{i}" for i in range(3000)]
    assert (cursor, ok) == ("n", None)
