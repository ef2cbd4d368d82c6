"""The id digest's functions against the documented method, written out longhand."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_slack_audit.ingest.evidence import (
    IdEvidence,
    combine_digests,
    id_digest,
    id_digest_sum,
)

from support.landing_invariants import independent_digest

# Any Unicode text but lone surrogates (which UTF-8, and so an id on the wire, cannot carry).
ids = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


@given(st.lists(ids, unique=True, max_size=60))
def test_digest_is_the_documented_sum(values: list[str]) -> None:
    assert id_digest(values) == independent_digest(set(values))
    assert id_digest_sum(iter(values)) == sum(int(independent_digest({value}), 16) for value in values)


@given(st.lists(ids, unique=True, max_size=60), st.integers(min_value=0, max_value=60))
def test_parts_combine_to_the_whole(values: list[str], split: int) -> None:
    assert combine_digests([id_digest(values[:split]), id_digest(values[split:])]) == id_digest(values)


def test_evidence_over_slices_matches_one_pass() -> None:
    """Batches longer than one digest slice (1,000 ids) give the digest of the whole set."""
    entries = [SimpleNamespace(id=f"id-{n}", date_create=1_700_000_000 + n % 97) for n in range(2_345)]
    evidence = IdEvidence()
    evidence.add(entries[:1_500])
    evidence.add(entries[1_500:])
    evidence.add([])
    assert evidence.count == 2_345
    assert evidence.to_json() == {
        "id_digest": independent_digest({entry.id for entry in entries}),
        "first_date_create": 1_700_000_000,
        "last_date_create": 1_700_000_096,
    }


def test_empty_set_digest_is_zero() -> None:
    assert id_digest([]) == "0" * 64
