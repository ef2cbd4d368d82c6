"""Without a Python >= 3.13 for local-bigquery, the BigQuery tests skip, even in CI, naming the fix;
``SLACK_AUDIT_REQUIRE_BIGQUERY=1`` (``make test-bigquery``) makes that a failure."""

from __future__ import annotations

import pytest

from support import emulators


@pytest.fixture
def no_python_313(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emulators, "python_313", lambda: None)
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv(emulators.REQUIRE_BIGQUERY, raising=False)


@pytest.mark.usefixtures("no_python_313")
def test_without_python_313_the_bigquery_tests_skip_in_ci_naming_the_fix() -> None:
    with pytest.raises(pytest.skip.Exception) as skipped:
        emulators.python_313_or_skip()

    assert "install Python 3.13" in str(skipped.value)
    assert "SLACK_AUDIT_PYTHON313" in str(skipped.value)


@pytest.mark.usefixtures("no_python_313")
def test_without_python_313_the_bigquery_tests_fail_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(emulators.REQUIRE_BIGQUERY, "1")

    with pytest.raises(pytest.fail.Exception) as failed:
        emulators.python_313_or_skip()

    assert "SLACK_AUDIT_PYTHON313" in str(failed.value)
    assert "SLACK_AUDIT_REQUIRE_BIGQUERY=1" in str(failed.value)


def test_a_found_python_313_is_the_one_local_bigquery_runs_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emulators, "python_313", lambda: "/opt/python3.13/bin/python")
    monkeypatch.setenv(emulators.REQUIRE_BIGQUERY, "1")

    assert emulators.python_313_or_skip() == "/opt/python3.13/bin/python"


def test_the_bigquery_tests_carry_the_bigquery_marker(pytestconfig: pytest.Config) -> None:
    markers = "\n".join(pytestconfig.getini("markers"))
    assert "bigquery:" in markers
    root = pytestconfig.rootpath / "tests"
    for module in ("transfers/test_slack_audit_to_bigquery.py", "system/test_bigquery_dag.py"):
        assert "pytest.mark.bigquery" in (root / module).read_text(), module
