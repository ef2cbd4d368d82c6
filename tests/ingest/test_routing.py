"""Routing a stream into interval files: the page-at-once path lands exactly what the rule says.

A page that is in range, newest first and free of repeats is cut with list and set operations;
any other page goes entry by entry. Both must follow one rule, written out here as a model: an
entry lands in the interval of its second unless its id was seen within the dedup horizon (ids
are remembered in two generations, a new one starting at each entry more than a horizon older
than the current generation's start).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from bisect import bisect_right
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_slack_audit.ingest import Window, read_manifest
from airflow_provider_slack_audit.ingest.landing.manifest import iter_data_lines
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.routing import DEDUP_HORIZON_SECONDS, remember_span
from airflow_provider_slack_audit.ingest.spec import IngestSpec

from support.scripted_client import ScriptedClient

DAY = datetime(2026, 1, 4, tzinfo=timezone.utc)
WINDOW = Window(DAY, DAY + timedelta(hours=6))
INTERVAL = timedelta(hours=1)
STARTS = [WINDOW.oldest + hour * 3600 for hour in range(6)]
# Seconds at and around every interval boundary and the window's edges, where an off-by-one hides.
EDGES = sorted({start + delta for start in [*STARTS, WINDOW.latest + 1] for delta in (-1, 0, 1)})


def model(pages: list[list[tuple[str, int]]]) -> tuple[dict[int, list[str]], int]:
    """The ids each interval lands (in stream order) and the duplicates dropped, by the rule."""
    seen: set[str] = set()
    older: set[str] = set()
    generation_start = boundary = WINDOW.latest + 1
    files: dict[int, list[str]] = defaultdict(list)
    duplicates = 0
    for page in pages:
        for entry_id, second in page:
            if not WINDOW.oldest <= second <= WINDOW.latest:
                continue
            if second < boundary:
                boundary = second
                if second < generation_start - DEDUP_HORIZON_SECONDS:
                    older, seen, generation_start = seen, set(), second
            if entry_id in seen or entry_id in older:
                duplicates += 1
                continue
            seen.add(entry_id)
            files[bisect_right(STARTS, second) - 1].append(entry_id)
    return files, duplicates


@st.composite
def streams(draw: st.DrawFn) -> list[list[tuple[str, int]]]:
    """Newest-first entries over the window (a few just outside it), split into pages; ids mostly
    unique, some repeated (within a second, across seconds, across the horizon)."""
    count = draw(st.integers(0, 60))
    second = st.one_of(st.integers(WINDOW.oldest - 30, WINDOW.latest + 30), st.sampled_from(EDGES))
    seconds = sorted(draw(st.lists(second, min_size=count, max_size=count)), reverse=True)
    ids = [
        draw(st.sampled_from(["r0", "r1", "r2"])) if draw(st.integers(0, 9)) == 0 else f"u{position}"
        for position in range(count)
    ]
    cuts = sorted(draw(st.sets(st.integers(1, max(1, count - 1)), max_size=6))) if count > 1 else []
    entries = list(zip(ids, seconds, strict=True))
    bounds = [0, *cuts, count]
    return [entries[a:b] for a, b in pairwise(bounds) if b > a] or [[]]


@pytest.mark.slow  # ~0.25 s per example: a whole ingest_window each
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages=streams())
def test_every_page_lands_as_the_routing_rule_says(pages: list[list[tuple[str, int]]]) -> None:
    expected, duplicates = model(pages)
    with tempfile.TemporaryDirectory() as root:
        spec = IngestSpec(
            window=WINDOW,
            interval=INTERVAL,
            destination=Path(root).as_uri(),
            settle_lag=timedelta(0),
            compression=None,
        )
        summary = asyncio.run(ingest_window(ScriptedClient(pages), spec))
        manifest = read_manifest(summary.manifest)
        landed = {
            STARTS.index(item.oldest): [
                json.loads(line)["id"] for line in iter_data_lines(item, manifest.compression, verify=True)
            ]
            for item in manifest.intervals
        }
    assert {index: ids for index, ids in landed.items() if ids} == dict(expected)
    assert summary.duplicates == duplicates
    assert summary.queries == 1


def test_a_dropped_generation_of_ids_is_emptied_where_it_is_dropped() -> None:
    """The usual-page path frees the generation it rotates out in the stream's thread (a slice at a
    time), so the event loop never frees a large set in one go."""
    start = 1_700_000_000
    older = {f"old-{n}" for n in range(25_000)}
    seen = {f"seen-{n}" for n in range(3)}
    # Newest first: one entry inside the current generation, then one past the horizon.
    ids = ["a", "b"]
    seconds = [start - 10, start - DEDUP_HORIZON_SECONDS - 20]
    kept_older = older

    new_seen, new_older, generation_start, _ = remember_span(
        ids, seconds, seen, older, start, start, 0, len(ids)
    )

    assert kept_older == set(), "the dropped generation still holds its ids"
    assert new_older == {f"seen-{n}" for n in range(3)} | {"a"}
    assert new_seen == {"b"}
    assert generation_start == seconds[1]
