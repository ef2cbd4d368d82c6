"""What the README and the docs pages present as runnable is runnable.

Every Python block compiles; a block that is a whole DAG file (it imports ``DAG`` and builds one) is
parsed by Airflow's DagBag, as a DAG processor would, and must give a DAG without import errors. The
README's links into the docs site name pages that exist, and it stays a short page. The re-run
recipes of the re-landing guide run verbatim in ``tests/system/test_rerun_recipes.py``.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import Path

import pytest

from airflow_provider_slack_audit import CONNECTION_FIELDS
from airflow_provider_slack_audit.hooks.slack_audit import ClientOptions
from airflow_provider_slack_audit.version_compat import AIRFLOW_V_3_2_PLUS

from support.example_dags import parse_dag_file

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
README = REPO / "README.md"
DOCS_SITE = "https://airflow-provider-slack-audit.readthedocs.io/en/latest/"
PAGES = sorted([README, *DOCS.rglob("*.md")])
_FENCE = re.compile(r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks(language: str) -> list[tuple[str, str]]:
    """(``page:line``, code) of every fenced block of ``language`` on the README and the docs pages."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in _FENCE.finditer(text):
            if match["lang"] == language:
                line = text.count("\n", 0, match.start()) + 2
                found.append((f"{page.relative_to(REPO)}:{line}", match["body"]))
    return found


PYTHON_BLOCKS = _blocks("python")
DAG_FILES = [
    (where, code)
    for where, code in PYTHON_BLOCKS
    if re.search(r"^from airflow\S* import .*\bDAG\b", code, re.MULTILINE) and "with DAG(" in code
]


def test_the_pages_hold_python_recipes_and_whole_dag_files() -> None:
    assert len(PYTHON_BLOCKS) >= 10
    assert {where.split(":")[0] for where, _ in DAG_FILES} >= {"README.md", "docs/getting-started.md"}


@pytest.mark.parametrize(("where", "code"), PYTHON_BLOCKS, ids=[where for where, _ in PYTHON_BLOCKS])
def test_every_python_block_compiles(where: str, code: str) -> None:
    compile(ast.parse(code, filename=where), where, "exec")


@pytest.mark.skipif(
    not AIRFLOW_V_3_2_PLUS, reason="the pages' DAG files import the Task SDK's timetables (Airflow 3.2+)"
)
@pytest.mark.parametrize(("where", "code"), DAG_FILES, ids=[where for where, _ in DAG_FILES])
def test_every_whole_dag_file_parses_into_a_dag(where: str, code: str, tmp_path: Path) -> None:
    dag_file = tmp_path / f"{re.sub(r'[^A-Za-z0-9]', '_', where)}.py"
    dag_file.write_text(code)
    bag = parse_dag_file(dag_file)
    assert bag.import_errors == {}, f"{where}: {bag.import_errors}"
    assert bag.dags, f"{where} builds no DAG"
    for dag in bag.dags.values():
        assert dag.tasks, f"{where}: DAG {dag.dag_id} has no task"


def test_the_connection_recipes_give_extras_the_hook_accepts() -> None:
    """Each ``--conn-extra`` and ``AIRFLOW_CONN_...`` JSON on the pages is a connection the hook takes."""
    recipes = []
    for where, code in _blocks("bash"):
        lines = [line for line in code.replace("\\\n", " ").splitlines() if line.strip()]
        for argv in (shlex.split(line, comments=True) for line in lines):
            if "--conn-extra" in argv:
                recipes.append((where, json.loads(argv[argv.index("--conn-extra") + 1])))
            for word in argv:
                if word.startswith("AIRFLOW_CONN_SLACK_AUDIT"):
                    recipes.append((where, json.loads(word.split("=", 1)[1]).get("extra", {})))
    assert len(recipes) >= 2
    for where, extras in recipes:
        unknown = set(extras) - set(CONNECTION_FIELDS)
        assert not unknown, f"{where}: unknown extras {unknown}"
        ClientOptions.from_extra(extras, conn_id=where)  # raises on a value out of its range


def test_the_readme_links_name_pages_that_exist() -> None:
    links = re.findall(re.escape(DOCS_SITE) + r"([\w/-]+)\.html", README.read_text())
    assert len(links) >= 10
    missing = [link for link in links if not (DOCS / f"{link}.md").is_file()]
    assert not missing, f"README links to docs pages that do not exist: {missing}"


def test_the_readme_stays_a_short_page() -> None:
    assert len(README.read_text().splitlines()) <= 200
