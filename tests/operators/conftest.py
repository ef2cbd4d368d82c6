"""Every operator test has a ``slack_audit_default`` connection (at a closed port unless a test says
otherwise); a module that checks the token defines its own ``_connection`` with that token."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture(autouse=True)
def _connection(slack_audit_connection: Callable[..., None]) -> None:
    # A closed port: any request made despite a refusal would fail differently.
    slack_audit_connection()
