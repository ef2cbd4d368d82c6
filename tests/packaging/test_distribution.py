"""What ships: the wheel and sdist carry the license, the metadata a platform team checks, no test caps."""

from __future__ import annotations

import email
import subprocess
import sys
import tarfile
import zipfile
from email.message import Message
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
# Builds the wheel and the sdist once for the module: seconds, so not in `make test-fast`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-d", str(out)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(next(dist.glob("*.whl")))


@pytest.fixture(scope="module")
def metadata(wheel: zipfile.ZipFile) -> Message:
    name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    return email.message_from_bytes(wheel.read(name))


def test_the_wheel_carries_the_license_and_notice(wheel: zipfile.ZipFile) -> None:
    names = {Path(n).name for n in wheel.namelist() if ".dist-info/licenses/" in n}

    assert {"LICENSE", "NOTICE"} <= names


def test_the_wheel_ships_the_fake_server_and_the_typing_marker(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())

    assert "airflow_provider_slack_audit/testing/server.py" in names or any(
        n.startswith("airflow_provider_slack_audit/testing/server") for n in names
    )
    assert "airflow_provider_slack_audit/py.typed" in names


def test_the_sdist_carries_changelog_license_security_and_examples(dist: Path) -> None:
    with tarfile.open(next(dist.glob("*.tar.gz"))) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}

    assert {"CHANGELOG.md", "LICENSE", "NOTICE", "SECURITY.md", "README.md"} <= names
    assert "example_dags/slack_audit_daily.py" in names


def test_metadata_has_the_project_urls(metadata: Message) -> None:
    labels = {value.split(",", 1)[0].strip() for value in metadata.get_all("Project-URL", [])}

    assert {"Homepage", "Documentation", "Source", "Changelog", "Issues"} <= labels


def test_metadata_classifies_python_3_10_to_3_13_and_a_development_status(metadata: Message) -> None:
    classifiers = set(metadata.get_all("Classifier", []))

    assert {f"Programming Language :: Python :: 3.{minor}" for minor in (10, 11, 12, 13)} <= classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert metadata["Requires-Python"] == ">=3.10"


def test_airflow_is_required_from_2_11_with_no_cap_below_4(metadata: Message) -> None:
    requirements = [Requirement(r) for r in metadata.get_all("Requires-Dist", [])]
    airflow = next(r for r in requirements if r.name == "apache-airflow" and not r.marker)

    assert airflow.specifier.contains("2.11.0")
    assert airflow.specifier.contains("3.99.0")


def test_runtime_requirements_are_capped_only_at_a_next_major_version(metadata: Message) -> None:
    # A cap for a test tool's sake (aiohttp<3.14 for aioresponses) belongs in the test extra; a
    # runtime requirement may only refuse the next major release of a library whose API it uses.
    runtime = [Requirement(r) for r in metadata.get_all("Requires-Dist", []) if "extra ==" not in r]
    caps = {r.name: spec.version for r in runtime for spec in r.specifier if spec.operator in ("<", "<=")}
    pinned = [str(r) for r in runtime if any(spec.operator in ("==", "~=", "===") for spec in r.specifier)]

    assert pinned == []
    assert "aiohttp" not in caps
    assert all(Version(version).release[1:] in ((), (0,), (0, 0)) for version in caps.values()), caps
