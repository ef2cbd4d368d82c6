"""Responses: raw bytes kept, lazy views, typed_body that never raises, the fast raw page view."""

from __future__ import annotations

import json

import pytest

from airflow_provider_slack_audit.client import AuditLogsResponse, LogsResponse, SlackAuditLogsApiError

URL = "https://api.slack.com/audit/v1/logs?cursor=abc"

ENTRY_A = (
    '{"id":"0123-a","date_create":1767484800,"action":"user_login",'
    '"actor":{"type":"user","user":{"id":"W1","name":"ana","email":"ana@example.com","team":"T1"}},'
    '"entity":{"type":"channel","channel":{"id":"C1","name":"général","privacy":"public","x_new":1}},'
    '"context":{"location":{"type":"workspace","id":"T1","name":"Acme","domain":"acme"},"ua":"UA",'
    '"ip_address":"192.0.2.1","session_id":"42"},"schema_version":2}'
)
ENTRY_B = '{"id": "0123-b", "date_create": 1767484799, "action": "file_downloaded"}'
PAGE = f'{{"entries":[{ENTRY_A}, {ENTRY_B}],"response_metadata":{{"next_cursor":"next"}}}}'


def response(body: str | bytes, status: int = 200) -> AuditLogsResponse:
    return AuditLogsResponse(url=URL, status_code=status, raw_body=body, headers={})


def test_raw_page_keeps_each_entrys_exact_bytes() -> None:
    page = response(PAGE).raw_page()
    assert [bytes(e.raw).decode() for e in page.entries] == [ENTRY_A, ENTRY_B]
    assert [(e.id, e.date_create) for e in page.entries] == [("0123-a", 1767484800), ("0123-b", 1767484799)]
    assert page.next_cursor == "next"


def test_raw_page_of_the_last_page_has_an_empty_cursor() -> None:
    assert response('{"entries":[]}').raw_page().next_cursor == ""
    assert response('{"entries":[],"response_metadata":{"next_cursor":""}}').next_cursor == ""


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "not an Audit Logs page"),
        (b"<html><body>Service Unavailable</body></html>", "not an Audit Logs page"),
        (b'{"entries":[{"id":"a","date_create":1}', "not an Audit Logs page"),  # truncated
        (b'{"entries":{"id":"a"}}', "not an Audit Logs page"),
        (b'{"response_metadata":{"next_cursor":""}}', "not an Audit Logs page"),
        (b'{"entries":[{"date_create":1}]}', "entry 0 of the page has no valid id"),
        (b'{"entries":[{"id":"a","date_create":"yesterday"}]}', "entry 0 of the page has no valid id"),
    ],
)
def test_a_2xx_body_that_is_not_a_page_is_a_transient_invalid_response(body: bytes, detail: str) -> None:
    with pytest.raises(SlackAuditLogsApiError, match=detail) as info:
        response(body).raw_page()
    assert info.value.error == "invalid_response"
    assert info.value.kind == "transient"


def test_raw_page_of_an_error_response_raises_the_api_error() -> None:
    with pytest.raises(SlackAuditLogsApiError) as info:
        response('{"ok":false,"error":"invalid_cursor"}', status=400).raw_page()
    assert info.value.kind == "cursor"
    assert info.value.error == "invalid_cursor"


def test_body_is_a_dict_for_json_objects_and_none_otherwise() -> None:
    assert response('{"ok":false,"error":"x"}', 400).body == {"ok": False, "error": "x"}
    assert response("<html></html>", 502).body is None
    assert response("", 200).body is None
    assert response("[1,2]", 200).body is None
    assert response('{"truncated":', 200).body is None


def test_raw_body_is_text_and_content_is_the_bytes_received() -> None:
    r = response(PAGE.encode())
    assert r.content == PAGE.encode()
    assert r.raw_body == PAGE
    assert response(b"").raw_body is None


def test_typed_body_of_an_error_gives_a_model_instead_of_raising() -> None:
    # slack_sdk's typed_body raises TypeError here: LogsResponse iterates entries=None.
    typed = response('{"ok":false,"error":"invalid_authentication"}', 401).typed_body
    assert isinstance(typed, LogsResponse)
    assert typed.ok is False
    assert typed.error == "invalid_authentication"
    assert typed.entries is None


def test_typed_body_of_schemas_keeps_what_is_there() -> None:
    typed = response('{"schemas":[{"type":"workspace","workspace":{"id":"string"}}]}').typed_body
    assert typed is not None
    assert typed.unknown_fields == {"schemas": [{"type": "workspace", "workspace": {"id": "string"}}]}


def test_typed_body_of_a_non_json_body_is_none() -> None:
    assert response("<html>oops</html>", 502).typed_body is None


def test_typed_entries_keep_unknown_fields_at_every_level() -> None:
    typed = response(PAGE).typed_body
    assert typed is not None and typed.entries is not None
    entry = typed.entries[0]
    assert entry.unknown_fields == {"schema_version": 2}
    assert entry.actor is not None and entry.actor.user is not None
    assert entry.actor.user.email == "ana@example.com"
    assert entry.entity is not None and entry.entity.channel is not None
    assert entry.entity.channel.name == "général"
    assert entry.entity.channel.unknown_fields == {"x_new": 1}
    assert entry.entity.target is entry.entity.channel
    assert entry.context is not None and entry.context.location is not None
    assert entry.context.location.domain == "acme"
    assert typed.response_metadata is not None and typed.response_metadata.next_cursor == "next"


def test_a_typed_entry_turns_back_into_the_original_object() -> None:
    typed = response(PAGE).typed_body
    assert typed is not None and typed.entries is not None
    assert typed.entries[0].to_dict() == json.loads(ENTRY_A)


def test_details_expose_any_key() -> None:
    body = '{"entries":[{"id":"x","date_create":1,"details":{"new_value":"admin","reason":null}}]}'
    typed = response(body).typed_body
    assert typed is not None and typed.entries is not None
    details = typed.entries[0].details
    assert details is not None
    assert details.new_value == "admin"
    assert details.missing_key is None
    assert details.to_dict() == {"new_value": "admin", "reason": None}


def test_validate_returns_a_2xx_response() -> None:
    r = response(PAGE)
    assert r.validate() is r


def test_validate_explains_the_error_and_what_to_do() -> None:
    with pytest.raises(SlackAuditLogsApiError) as info:
        response('{"ok":false,"error":"invalid_authentication"}', 401).validate()
    message = str(info.value)
    assert "HTTP 401" in message
    assert "invalid_authentication" in message
    assert "org owner token" in message
    assert "cursor=abc" not in message  # the query is left out of messages
    assert info.value.kind == "permanent"


def test_validate_of_an_html_502_is_transient() -> None:
    with pytest.raises(SlackAuditLogsApiError, match="no Slack error code") as info:
        response("<html>Bad Gateway</html>", 502).validate()
    assert info.value.kind == "transient"
    assert info.value.error is None


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("invalid_authentication", "permanent"),
        ("user_not_authorized", "permanent"),
        ("invalid_cursor", "cursor"),
        ("rate_limited", "transient"),
        ("upstream_timeout", "transient"),  # a gateway's own code
        (None, "transient"),
    ],
)
def test_a_2xx_body_saying_ok_false_is_an_error_never_an_empty_page(code: str | None, kind: str) -> None:
    body = {"ok": False, "entries": [], "response_metadata": {"next_cursor": ""}}
    if code is not None:
        body["error"] = code
    gateway = response(json.dumps(body))
    for view in (gateway.validate, gateway.raw_page):
        with pytest.raises(SlackAuditLogsApiError) as info:
            view()
        assert (info.value.error, info.value.kind) == (code, kind)
        assert "ok: false" in info.value.message


def test_an_entry_mentioning_ok_false_does_not_make_a_page_an_error() -> None:
    page = '{"entries":[{"id":"a","date_create":1,"details":{"ok":false}}],"response_metadata":{}}'
    assert [e.id for e in response(page).raw_page().entries] == ["a"]
