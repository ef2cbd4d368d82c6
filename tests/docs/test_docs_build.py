"""``make docs`` is strict: the site builds clean, and a broken link between pages fails the build.

The test runs the Makefile's own target on a copy of the docs, so the flags it checks are the ones
``make test`` builds with.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def make_docs(docs: Path, build: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "--no-print-directory", "docs", f"DOCS_SRC={docs}", f"DOCS_BUILD={build}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture
def docs_copy(tmp_path: Path) -> Path:
    """The docs pages and what they include (the changelog), laid out as in the repository."""
    shutil.copytree(REPO / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("_build"))
    shutil.copy(REPO / "CHANGELOG.md", tmp_path / "CHANGELOG.md")
    return tmp_path / "docs"


def test_the_docs_build_clean_and_hold_every_page(docs_copy: Path, tmp_path: Path) -> None:
    result = make_docs(docs_copy, tmp_path / "build")
    assert result.returncode == 0, result.stdout + result.stderr
    html = tmp_path / "build" / "html"
    pages = {page.relative_to(docs_copy).with_suffix(".html") for page in docs_copy.rglob("*.md")}
    assert pages and all((html / page).is_file() for page in pages)
    # The operator's parameters come from its docstring, not from the page.
    assert "slack_audit_conn_id" in (html / "operators" / "landing.html").read_text()


@pytest.mark.parametrize(
    ("link", "named"),
    [
        ("[a page that is not there](no-such-page.md)", "no-such-page"),
        ("[a heading that is not there](concepts/layout.md#no-such-heading)", "no-such-heading"),
    ],
)
def test_a_broken_internal_link_fails_the_build(
    docs_copy: Path, tmp_path: Path, link: str, named: str
) -> None:
    index = docs_copy / "index.md"
    index.write_text(index.read_text() + f"\nSee {link}.\n")
    result = make_docs(docs_copy, tmp_path / "build")
    assert result.returncode != 0
    assert named in result.stdout + result.stderr
