"""How one landed line becomes one row: RowBuilder, without a database."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_slack_audit.transfers._schema import (
    COLUMN_NAMES,
    NUL_ESCAPE,
    InvalidEntryError,
    RowBuilder,
    action_timestamp_micros,
)

from support.audit_entries import SAMPLE_ENTRIES, entry_line

builder = RowBuilder(timestamp=lambda micros: f"t{micros}")


def build(entry: dict[str, object]) -> dict[str, object]:
    return dict(zip(COLUMN_NAMES, builder.build(entry_line(entry)), strict=True))


def test_a_row_has_one_value_per_column_in_column_order() -> None:
    entry = SAMPLE_ENTRIES["file"]

    row = builder.build(entry_line(entry))

    assert len(row) == len(COLUMN_NAMES)
    assert (row[0], row[1], row[2]) == (
        entry["id"],
        f"t{entry['date_create'] * 1_000_000}",
        "file_downloaded",
    )
    assert row[-1] == entry_line(entry).decode()


def test_details_keep_their_json_text_exactly() -> None:
    line = b'{"id":"a","date_create":1,"action":"x","details":{"b": [1, 2.50], "a": "\\u00e9"}}'

    row = dict(zip(COLUMN_NAMES, builder.build(line), strict=True))

    assert row["details"] == '{"b": [1, 2.50], "a": "\\u00e9"}'
    assert row["raw"] == line.decode()


@pytest.mark.parametrize("details", [None, "absent"])
def test_null_or_absent_details_become_sql_null(details: object) -> None:
    entry = {"id": "a", "date_create": 1, "action": "x"}
    if details != "absent":
        entry["details"] = details

    assert build(entry)["details"] is None


def test_scalars_of_unexpected_types_become_text_instead_of_failing_the_load() -> None:
    entry = {
        "id": "a",
        "date_create": 1,
        "action": "x",
        "actor": {"type": "user", "user": {"id": 42, "name": True, "email": None, "team": ["T1"]}},
        "entity": {"type": "file", "file": {"id": 7, "name": {"nested": 1}}},
    }

    row = build(entry)

    assert (row["actor_user_id"], row["actor_user_name"], row["actor_user_team"]) == ("42", "true", '["T1"]')
    assert (row["entity_id"], row["entity_name"]) == ("7", '{"nested":1}')


def test_an_entity_whose_target_is_missing_keeps_its_type() -> None:
    row = build({"id": "a", "date_create": 1, "action": "x", "entity": {"type": "huddle"}})

    assert (row["entity_type"], row["entity_id"], row["entity_name"]) == ("huddle", None, None)


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b'{"date_create":1,"action":"x"}', id="no-id"),
        pytest.param(b'{"id":"a","action":"x"}', id="no-date_create"),
        pytest.param(b'{"id":"a","date_create":"2026-01-04","action":"x"}', id="date_create-not-seconds"),
        pytest.param(b'{"id":"a","date_create":1}', id="no-action"),
        pytest.param(json.dumps(["a", 1, "x"]).encode(), id="not-an-object"),
        pytest.param(b'{"id":"a","date_create":1,"action":"\xff"}', id="not-utf8"),
    ],
)
def test_a_line_that_is_not_an_entry_is_refused(line: bytes) -> None:
    with pytest.raises(InvalidEntryError, match="not an Audit Logs entry"):
        builder.build(line)


def anomaly(**details: object) -> dict[str, object]:
    return {"id": "a", "date_create": 1, "action": "anomaly", "details": details}


def test_an_anomaly_events_signal_gets_its_own_columns() -> None:
    row = build(
        anomaly(
            reason=["asn", "ip_address"],
            previous_ip_address="198.51.100.4",
            previous_ua="curl/8.0",
            action_timestamp=1767484800123,
            location="Paris",
        )
    )

    assert json.loads(str(row["anomaly_reasons"])) == ["asn", "ip_address"]
    assert (row["anomaly_previous_ip_address"], row["anomaly_previous_ua"]) == ("198.51.100.4", "curl/8.0")
    assert row["anomaly_action_timestamp"] == "t1767484800123000"
    assert json.loads(str(row["details"]))["location"] == "Paris"  # details keep everything


@pytest.mark.parametrize(
    ("value", "micros"),
    [
        pytest.param(1767484800123, 1767484800123000, id="milliseconds"),
        pytest.param(1767484800123456, 1767484800123456, id="microseconds"),
        pytest.param(1767484800, 1767484800000000, id="seconds"),
        pytest.param("1767484800123", 1767484800123000, id="numeric-string"),
        pytest.param(1767484800.5, 1767484800500000, id="float-seconds"),
        pytest.param("soon", None, id="not-a-number"),
        pytest.param(None, None, id="absent"),
        pytest.param(True, None, id="boolean"),
    ],
)
def test_action_timestamp_is_normalised_whatever_its_unit(value: object, micros: int | None) -> None:
    assert action_timestamp_micros(value) == micros


def test_only_anomaly_events_fill_the_anomaly_columns() -> None:
    row = build({"id": "a", "date_create": 1, "action": "user_login", "details": {"reason": ["asn"]}})

    assert row["anomaly_reasons"] is row["anomaly_action_timestamp"] is None


@pytest.mark.parametrize("details", [["not", "an", "object"], "text", {"reason": "single"}])
def test_odd_anomaly_details_never_fail_the_row(details: object) -> None:
    row = build({"id": "a", "date_create": 1, "action": "anomaly", "details": details})

    assert row["anomaly_reasons"] in (None, '["single"]')


def test_nul_is_escaped_in_flat_columns_and_json_when_asked() -> None:
    entry = {
        "id": "a",
        "date_create": 1,
        "action": "x",
        "actor": {"type": "user", "user": {"name": "ev\u0000il"}},
        "details": {"note": "a\u0000b", "path": "C:\\u0000", "k\u0000": 1},
    }
    line = entry_line(entry)

    row = dict(zip(COLUMN_NAMES, RowBuilder(str, escape_nul=True).build(line), strict=True))

    assert row["actor_user_name"] == f"ev{NUL_ESCAPE}il"
    # JSON stays valid and holds the same escape as text; a literal backslash-u0000 stays as it was.
    assert json.loads(str(row["details"])) == {
        "note": f"a{NUL_ESCAPE}b",
        "path": "C:\\u0000",
        f"k{NUL_ESCAPE}": 1,
    }
    assert json.loads(str(row["raw"]))["details"] == json.loads(str(row["details"]))
    assert "\x00" not in "".join(str(value) for value in row.values())


def test_nul_is_kept_as_is_without_the_escape() -> None:
    line = entry_line({"id": "a", "date_create": 1, "action": "x", "actor": {"user": {"name": "a\u0000"}}})

    assert build(json.loads(line))["actor_user_name"] == "a\u0000"
    assert builder.build(line)[-1] == line.decode()


_TEXTS = st.one_of(st.none(), st.text(max_size=8))
_SCALARS = st.one_of(
    _TEXTS,
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.lists(st.integers(0, 9), max_size=2),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 9), max_size=1),
)
# Documented types, an invented one, and "type" (the key holding the type itself).
_ENTITY_TYPES = st.one_of(
    st.none(), st.sampled_from(["user", "file", "channel", "huddle", "canvas_v2", "type"])
)


def _part(names: list[str], values: st.SearchStrategy[object]) -> st.SearchStrategy[dict[str, object]]:
    """An object with some of ``names``, each holding one of ``values``."""
    return st.fixed_dictionaries({}, optional=dict.fromkeys(names, values))


def _text(value: object) -> str | None:
    return value if value is None or isinstance(value, str) else msgspec.json.encode(value).decode()


@st.composite
def _entries(draw: st.DrawFn) -> dict[str, object]:
    # Mostly text (what Slack sends), sometimes any scalar anywhere (what it might send one day).
    values = draw(st.sampled_from([_TEXTS, _SCALARS]))
    entry: dict[str, object] = {"id": "a", "date_create": 1, "action": "x"}
    if draw(st.booleans()):
        entry["actor"] = {"type": draw(values), "user": draw(_part(["id", "name", "email", "team"], values))}
    entity_type = draw(_ENTITY_TYPES)
    entity: dict[str, object] = {"type": entity_type}
    if isinstance(entity_type, str) and draw(st.booleans()):
        entity[entity_type] = draw(st.one_of(_part(["id", "name", "extra"], values), values))
    entry["entity"] = entity
    context = draw(_part(["ua", "ip_address"], values))
    context["session_id"] = draw(st.one_of(values, st.integers(0, 2**53)))  # Slack sends numbers too
    context["location"] = draw(_part(["type", "id", "name", "domain"], values))
    if draw(st.booleans()):
        context["app"] = draw(_part(["id", "name"], values))
    entry["context"] = context
    return entry


def _expected_flat_columns(entry: dict[str, Any]) -> dict[str, object]:
    """The documented mapping, written out: each column's value at its fixed place, as text."""
    actor, context = entry.get("actor") or {}, entry["context"]
    user, location, app = actor.get("user") or {}, context["location"], context.get("app") or {}
    entity = entry["entity"]
    entity_type = entity["type"]
    target = entity.get(entity_type) if isinstance(entity_type, str) else None
    target = target if isinstance(target, dict) else {}
    return {
        "actor_type": _text(actor.get("type")),
        **{f"actor_user_{name}": _text(user.get(name)) for name in ("id", "name", "email", "team")},
        "entity_type": _text(entity_type),
        "entity_id": _text(target.get("id")),
        "entity_name": _text(target.get("name")),
        **{f"location_{name}": _text(location.get(name)) for name in ("type", "id", "name", "domain")},
        **{name: _text(context.get(name)) for name in ("ua", "ip_address", "session_id")},
        "app_id": _text(app.get("id")),
        "app_name": _text(app.get("name")),
    }


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_entries())
def test_every_flat_column_follows_the_documented_mapping_whatever_the_value_types(
    entry: dict[str, Any],
) -> None:
    row = build(entry)

    assert {name: row[name] for name in _expected_flat_columns(entry)} == _expected_flat_columns(entry)
