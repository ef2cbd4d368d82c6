"""The layering contracts of pyproject.toml ([tool.importlinter]) hold, and fail on an upward import.

Each check runs ``lint-imports`` against a copy of the package in a temp dir, so an edit that breaks
a contract never touches the tree under test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "airflow_provider_slack_audit"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

CLIENT = "The client imports no Airflow and nothing of the package but itself"
INGEST = "The ingest path imports no hook, trigger, operator or transfer"
TESTING = "No production module imports the test doubles (airflow_provider_slack_audit.testing)"
LAYERS = "Each part of the package imports only the parts below it"
INGEST_LAYERS = "The ingest's modules import only the layers below them"
LANDING_LAYERS = "The landing's modules import only the layers below them"
TRANSFERS_LAYERS = "The transfers' modules import only the layers below them"
CONTRACTS = (CLIENT, INGEST, TESTING, LAYERS, INGEST_LAYERS, LANDING_LAYERS, TRANSFERS_LAYERS)

# lint-imports runs once per case (a few seconds each); `make lint` runs it on the tree itself.
pytestmark = pytest.mark.slow


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """The package and its pyproject.toml (which holds the contracts), copied under ``tmp_path``."""
    shutil.copytree(REPO / PACKAGE, tmp_path / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    # The copy comes first on the path, ahead of the installed package.
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "250", "NO_COLOR": "1"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def verdicts(output: str) -> dict[str, str]:
    """Contract name -> KEPT or BROKEN, from lint-imports' summary (however it wraps the lines)."""
    flat = " ".join(output.split())
    names = CONTRACTS
    found = {name: re.search(re.escape(name) + r" (KEPT|BROKEN)", flat) for name in names}
    return {name: match.group(1) for name, match in found.items() if match}


def add_import(module: Path, statement: str) -> None:
    """Append ``statement`` after the module's ``from __future__`` line (first, so it always runs)."""
    source = module.read_text()
    marker = "from __future__ import annotations\n"
    assert marker in source, module
    module.write_text(source.replace(marker, marker + statement + "\n", 1))


def test_the_contracts_hold_on_the_package_as_it_is(package_copy: Path) -> None:
    result = lint_imports(package_copy)

    assert result.returncode == 0, result.stdout + result.stderr
    assert verdicts(result.stdout) == dict.fromkeys(CONTRACTS, "KEPT")


@pytest.mark.parametrize(
    ("module", "statement", "contract"),
    [
        pytest.param(
            "client/logs.py",
            f"from {PACKAGE}.ingest import windows  # noqa",
            CLIENT,
            id="client-imports-ingest",
        ),
        pytest.param(
            "client/retry.py",
            "import airflow  # noqa",
            CLIENT,
            id="client-imports-airflow",
        ),
        pytest.param(
            "ingest/windows.py",
            "from typing import TYPE_CHECKING\n"
            f"if TYPE_CHECKING:\n    from {PACKAGE}.operators import slack_audit",
            INGEST,
            id="ingest-imports-an-operator-for-typing-only",
        ),
        pytest.param(
            "hooks/slack_audit.py",
            f"from {PACKAGE}.testing import server  # noqa",
            TESTING,
            id="hook-imports-the-fake-server",
        ),
        pytest.param(
            "transfers/_bulk.py",
            f"from {PACKAGE}.operators import slack_audit  # noqa",
            LAYERS,
            id="transfer-imports-an-operator",
        ),
        pytest.param(
            "hooks/slack_audit.py",
            f"from {PACKAGE}.triggers import slack_audit  # noqa",
            LAYERS,
            id="hook-imports-a-trigger",
        ),
        pytest.param(
            "ingest/landing/layout.py",
            "from typing import TYPE_CHECKING\n"
            f"if TYPE_CHECKING:\n    from {PACKAGE}.ingest.spec import IngestSpec",
            INGEST_LAYERS,
            id="landing-imports-the-spec-for-typing-only",
        ),
        pytest.param(
            "ingest/stream.py",
            f"from {PACKAGE}.ingest import monitor  # noqa",
            INGEST_LAYERS,
            id="stream-imports-its-sibling-monitor",
        ),
        pytest.param(
            "ingest/landing/writer.py",
            "from typing import TYPE_CHECKING\n"
            f"if TYPE_CHECKING:\n    from {PACKAGE}.ingest.landing.destination import Landing",
            LANDING_LAYERS,
            id="writer-imports-the-landing-facade-for-typing-only",
        ),
        pytest.param(
            "transfers/_window.py",
            "from typing import TYPE_CHECKING\n"
            f"if TYPE_CHECKING:\n    from {PACKAGE}.transfers._bulk import Staging",
            TRANSFERS_LAYERS,
            id="window-reading-imports-the-bulk-load-for-typing-only",
        ),
    ],
)
def test_an_upward_import_breaks_the_contract_it_crosses(
    package_copy: Path, module: str, statement: str, contract: str
) -> None:
    add_import(package_copy / PACKAGE / module, statement)

    result = lint_imports(package_copy)

    assert result.returncode != 0, result.stdout
    assert verdicts(result.stdout)[contract] == "BROKEN", result.stdout
