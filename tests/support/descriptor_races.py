"""Two first landings in one destination at the same instant: what each of them got."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.errors import DestinationConflictError
from airflow_provider_slack_audit.ingest.landing.descriptor import prepare_destination
from airflow_provider_slack_audit.ingest.landing.plan import DestinationLayout
from airflow_provider_slack_audit.version_compat import ObjectStoragePath


def race_first_landings(
    root: ObjectStoragePath, window: Window, layouts: Sequence[DestinationLayout]
) -> list[str]:
    """One thread per layout checks and records the destination, all released at once by a barrier;
    each outcome is ``"landed"`` (the run may go ahead) or ``"refused"``."""
    barrier = threading.Barrier(len(layouts))
    outcomes = [""] * len(layouts)

    def first_landing(index: int) -> None:
        barrier.wait()
        try:
            prepare_destination(root, window, layouts[index])
            outcomes[index] = "landed"
        except DestinationConflictError:
            outcomes[index] = "refused"

    threads = [threading.Thread(target=first_landing, args=(index,)) for index in range(len(layouts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
