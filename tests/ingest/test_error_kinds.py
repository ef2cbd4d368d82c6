"""Retry semantics stated once: every error type has its kind in ingest.errors (or the client's), and
the docs' error table lists each one with that kind."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import pytest

from airflow_provider_slack_audit.client import errors as client_errors
from airflow_provider_slack_audit.ingest import errors
from airflow_provider_slack_audit.ingest.errors import IngestError, kind_of

ERROR_TABLE = Path(__file__).parents[2] / "docs" / "reference" / "errors.md"


def table_kinds() -> dict[str, str]:
    """The docs table's rows: the error's name (its first `code` span) -> its kind column."""
    rows = {}
    for line in ERROR_TABLE.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        name = re.match(r"`(\w+)`", cells[0]) if len(cells) == 4 else None
        if name:
            rows[name.group(1)] = cells[2]
    return rows


def ingest_error_types() -> list[type[IngestError]]:
    """Every error type of ingest.errors but the base class."""
    types = [value for value in vars(errors).values() if isinstance(value, type)]
    return [value for value in types if issubclass(value, IngestError) and value is not IngestError]


@pytest.mark.parametrize("error_type", ingest_error_types(), ids=lambda error_type: error_type.__name__)
def test_the_docs_table_lists_every_ingest_error_with_its_kind(error_type: type[IngestError]) -> None:
    assert table_kinds().get(error_type.__name__) == error_type.kind


def test_the_docs_table_lists_every_error_of_the_client() -> None:
    client_types = [
        name
        for name, value in vars(client_errors).items()
        if isinstance(value, type)
        and issubclass(value, Exception)
        and value.__module__ == client_errors.__name__
    ]
    assert client_types, "the client defines its errors in client.errors"
    assert set(client_types) <= set(table_kinds())


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (errors.LeaseWaitTimeout("leased"), "transient"),
        (errors.UnsupportedStoreError("ftp"), "permanent"),
        (client_errors.SlackAuditLogsApiError("x", status_code=400, error="invalid_cursor"), "cursor"),
        (client_errors.SlackAuditLogsConfigError("bad extra"), "permanent"),
        (aiohttp.ServerDisconnectedError(), "transient"),
        (asyncio.TimeoutError(), "transient"),
        (ConnectionResetError(), "transient"),
        (FileNotFoundError("gone"), "transient"),  # storage: sorted by the ingest, not the client
        (ValueError("bad window"), "permanent"),
        (KeyError("bug"), "permanent"),
    ],
)
def test_kind_of_sorts_every_exception_a_landing_raises(exc: BaseException, kind: str) -> None:
    assert kind_of(exc) == kind


def test_the_rows_of_foreign_exceptions_state_the_kind_kind_of_gives_them() -> None:
    rows = table_kinds()
    assert rows["OSError"] == kind_of(OSError("disk full")) == "transient"
    assert rows["ValueError"] == kind_of(TypeError("bad type")) == "permanent"
