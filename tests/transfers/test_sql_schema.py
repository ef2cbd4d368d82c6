"""How one landed line becomes one row: RowBuilder, without a database."""

from __future__ import annotations

import json

import pytest
from audit_entries import SAMPLE_ENTRIES, entry_line

from airflow_provider_slack_audit.transfers._schema import (
    COLUMN_NAMES,
    InvalidEntryError,
    RowBuilder,
)

builder = RowBuilder(timestamp=lambda epoch: f"t{epoch}")


def build(entry: dict[str, object]) -> dict[str, object]:
    return dict(zip(COLUMN_NAMES, builder.build(entry_line(entry)), strict=True))


def test_a_row_has_one_value_per_column_in_column_order() -> None:
    entry = SAMPLE_ENTRIES["file"]

    row = builder.build(entry_line(entry))

    assert len(row) == len(COLUMN_NAMES)
    assert (row[0], row[1], row[2]) == (entry["id"], f"t{entry['date_create']}", "file_downloaded")
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
