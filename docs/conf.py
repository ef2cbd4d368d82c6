"""Sphinx configuration of the provider's docs site (``make docs``; Read the Docs builds the same).

Pages are Markdown (MyST), so the prose reads the same on GitHub; the parameters and the API reference
come from the docstrings through autodoc, never retyped. ``make docs`` builds with ``-W -n``: any
warning, broken internal link or unresolved reference to this package fails the build.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# autodoc imports the package, which imports Airflow: give it a throwaway home, never the user's.
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / "docs" / "_build" / "airflow_home"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow_provider_slack_audit import __version__  # noqa: E402

project = "airflow-provider-slack-audit"
author = "airflow-provider-slack-audit developers"
copyright = "2026, airflow-provider-slack-audit developers"
release = __version__
version = __version__

# napoleon: the client's docstrings use Google-style "Args:" sections; the rest use ":param:".
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"

myst_enable_extensions = ["colon_fence", "deflist"]
# "#section" links inside and across pages are checked: a heading renamed breaks the build.
myst_heading_anchors = 4

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": True}

# Strict for this package, lenient for everyone else's: without network access there is no
# intersphinx inventory for Python, Airflow or aiohttp, so references into them cannot resolve.
nitpicky = True
# Private names (a ``_`` component) are not documented, so references to them are not checked either.
nitpick_ignore_regex = [
    (r"py:.*", r"(?!airflow_provider_slack_audit\b).*"),
    (r"py:.*", r".*\._.*"),
]

html_theme = "furo"
html_title = f"airflow-provider-slack-audit {release}"
