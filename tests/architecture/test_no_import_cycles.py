"""No module of the package imports, directly or through others, a module that imports it back.

grimp reads every import statement, those under ``TYPE_CHECKING`` and inside functions too, so a
cycle hidden from the interpreter still fails here. The layering contracts (``make lint``) say which
way imports go; this says there is no way back, for the modules no contract names as well.
"""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter

import grimp


def test_the_package_has_no_import_cycle() -> None:
    graph = grimp.build_graph("airflow_provider_slack_audit", include_external_packages=False)
    sorter = TopologicalSorter(
        {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    )
    try:
        sorter.prepare()
    except CycleError as error:
        raise AssertionError(f"import cycle: {' -> '.join(error.args[1])}") from None
