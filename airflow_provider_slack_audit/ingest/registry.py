"""Drift: the action names and entry keys seen under a destination, in ``_registry/schema.json``.

Each window records the names the destination had not seen before (the first window, a baseline);
docs/guides/drift-and-silence.md shows the document and the warning. Names come from a spread sample
of at most :data:`SAMPLE_PER_PAGE` entries per page, since decoding every entry would cost a large
share of the landing path's time: a name very few entries carry may be seen only on a later window.
Updates merge on write (read, union, write atomically), so concurrent writers never lose the file; a
lost race only reports a name as new once more. Each section keeps at most
:data:`MAX_REGISTRY_NAMES` names and counts the rest in ``dropped``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from airflow_provider_slack_audit.client.response import RawEntry
from airflow_provider_slack_audit.version_compat import ObjectStoragePath

from .landing._fs import is_local, write_small_file

log = logging.getLogger(__name__)

REGISTRY_DIR = "_registry"
SCHEMA_FILE = "schema.json"
REGISTRY_VERSION = 1
# Entries of one page whose names are decoded (see the module docstring for the trade-off).
SAMPLE_PER_PAGE = 128
# Examples named in the drift warning, per kind.
EXAMPLES = 5
# Names of each kind the summary lists (counts stay exact): the summary travels as XCom, as the
# trigger's event (``next_kwargs``, a 64 KiB TEXT column on MySQL) and in the asset event's extra,
# so it stays a few KiB whatever Slack sends; the registry has the full list.
SUMMARY_EXAMPLES = 20
# Names the registry keeps per section (actions, keys, listed actions). Slack's real vocabulary is a
# few hundred of each; a field keyed by ids would otherwise grow the file without bound. A name seen
# once its section is full is reported in that window's drift but not kept (counted in ``dropped``).
MAX_REGISTRY_NAMES = 2000
NESTED = ("context", "entity", "details")


class _EntryNames(msgspec.Struct, gc=False):
    action: str | None = None
    context: dict[str, msgspec.Raw] | None = None
    entity: dict[str, msgspec.Raw] | None = None
    details: dict[str, msgspec.Raw] | None = None


_names_decoder = msgspec.json.Decoder(_EntryNames)
_top_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])


def sample_positions(count: int, size: int = SAMPLE_PER_PAGE) -> range | list[int]:
    """Positions of a spread sample of ``size`` among ``count`` entries (all when ``count <= size``)."""
    if count <= size:
        return range(count)
    step = (count - 1) / (size - 1)
    return sorted({round(i * step) for i in range(size)})


@dataclass
class NameSampler:
    """Collects action names and key paths from the pages of one window (in the decode thread).

    ``actions`` maps each action to the number of sampled entries carrying it; ``keys`` maps each
    key path to the first action it was seen with (an example for the warning).
    """

    sample_per_page: int = SAMPLE_PER_PAGE
    actions: dict[str, int] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    sampled: int = 0

    def observe(self, entries: Sequence[RawEntry]) -> None:
        for position in sample_positions(len(entries), self.sample_per_page):
            self.observe_raw(entries[position].raw)

    def observe_raw(self, raw: Any) -> None:
        names: _EntryNames | None
        top: Iterable[str]
        try:
            top = _top_decoder.decode(raw)
            names = _names_decoder.decode(raw)
        except msgspec.DecodeError:
            names, top = _loose_names(raw)
        if names is None:
            return
        self.sampled += 1
        action = names.action if isinstance(names.action, str) else ""
        self.actions[action] = self.actions.get(action, 0) + 1
        keys = self.keys
        for key in top:
            keys.setdefault(key, action)
        for scope in NESTED:
            nested = getattr(names, scope)
            if nested:
                for key in nested:
                    keys.setdefault(f"{scope}.{key}", action)


def _loose_names(raw: Any) -> tuple[_EntryNames | None, Iterable[str]]:
    """An entry whose context/entity/details is not an object: take the keys of what is one."""
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None, ()
    if not isinstance(value, dict):
        return None, ()
    nested = {scope: value.get(scope) if isinstance(value.get(scope), dict) else None for scope in NESTED}
    action = value.get("action")
    return _EntryNames(action=action if isinstance(action, str) else None, **nested), list(value)


@dataclass
class Drift:
    """What one window saw first under its destination."""

    new_actions: list[str]
    new_keys: list[str]
    new_listed_actions: list[str] = field(default_factory=list)
    baseline: bool = False

    @property
    def any(self) -> bool:
        return bool(self.new_actions or self.new_keys or self.new_listed_actions)

    def to_json(self) -> dict[str, Any]:
        """The summary's ``drift``: at most :data:`SUMMARY_EXAMPLES` names of each kind, exact counts."""
        kinds = {
            "new_actions": self.new_actions,
            "new_keys": self.new_keys,
            "new_listed_actions": self.new_listed_actions,
        }
        return {
            **{kind: names[:SUMMARY_EXAMPLES] for kind, names in kinds.items()},
            "counts": {kind: len(names) for kind, names in kinds.items()},
            "truncated": any(len(names) > SUMMARY_EXAMPLES for names in kinds.values()),
            "baseline": self.baseline,
        }

    def describe(self, examples: Mapping[str, str]) -> str:
        parts = []
        if self.new_actions:
            parts.append(f"{len(self.new_actions)} new action(s) {_some(self.new_actions)}")
        if self.new_keys:
            shown = [f"{key} (in {examples[key]})" if examples.get(key) else key for key in self.new_keys]
            parts.append(f"{len(self.new_keys)} new key(s) {_some(shown)}")
        if self.new_listed_actions:
            parts.append(
                f"{len(self.new_listed_actions)} action(s) newly listed by the actions endpoint "
                f"{_some(self.new_listed_actions)}"
            )
        return "; ".join(parts)


def _some(names: Sequence[str]) -> str:
    shown = ", ".join(names[:EXAMPLES])
    return f"[{shown}{', ...' if len(names) > EXAMPLES else ''}]"


def registry_path(destination: ObjectStoragePath, name: str = SCHEMA_FILE) -> ObjectStoragePath:
    return destination / REGISTRY_DIR / name


def read_document(path: ObjectStoragePath) -> dict[str, Any]:
    """A registry document, or an empty one when there is none (or it is not a JSON object)."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except ValueError:
        log.warning("Registry file %s is not valid JSON: starting it afresh", path)
        return {}
    return data if isinstance(data, dict) else {}


def write_document(path: ObjectStoragePath, document: Mapping[str, Any]) -> None:
    write_bytes(path, json.dumps(document, indent=1, sort_keys=True).encode() + b"\n")


def write_bytes(path: ObjectStoragePath, payload: bytes) -> None:
    """Write a small file atomically (readers see the old or the new version), parents created."""
    if is_local(path):  # object stores have no directories to create
        path.parent.mkdir(parents=True, exist_ok=True)
    write_small_file(path, payload)


def merge_names(
    document: Mapping[str, Any], section: str, names: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """``document`` with ``names`` added to ``section``; an entry already there keeps its first_seen.

    A section holds at most :data:`MAX_REGISTRY_NAMES` names: the rest (in ``names``' order) are
    counted in ``dropped``.
    """
    merged = dict(document)
    known = dict(merged.get(section) or {})
    dropped = 0
    for name, record in names.items():
        if name in known:
            continue
        if len(known) >= MAX_REGISTRY_NAMES:
            dropped += 1
            continue
        known[name] = dict(record)
    merged[section] = known
    if dropped:
        counts = dict(merged.get("dropped") or {})
        counts[section] = int(counts.get(section) or 0) + dropped
        merged["dropped"] = counts
    merged["version"] = REGISTRY_VERSION
    return merged


def record_window_names(
    destination: ObjectStoragePath, window_key: str, sampler: NameSampler
) -> tuple[Drift, dict[str, str]]:
    """Compare the window's names with the registry, add the new ones; return the drift.

    Blocking: call in a worker thread, after the window committed.
    """
    path = registry_path(destination)
    current = read_document(path)
    known_actions = current.get("actions") or {}
    known_keys = current.get("keys") or {}
    baseline = not known_actions and not known_keys
    new_actions = sorted(a for a in sampler.actions if a not in known_actions)
    new_keys = sorted(k for k in sampler.keys if k not in known_keys)
    if new_actions or new_keys:
        # Read again just before writing: a writer that finished meanwhile keeps its entries.
        latest = read_document(path)
        latest = merge_names(latest, "actions", {a: {"first_seen": window_key} for a in new_actions})
        latest = merge_names(
            latest,
            "keys",
            {k: {"first_seen": window_key, "action": sampler.keys[k]} for k in new_keys},
        )
        write_document(path, latest)
    if baseline:
        return Drift([], [], baseline=True), {}
    return Drift(new_actions, new_keys), {k: sampler.keys[k] for k in new_keys}


def listed_actions(body: Any) -> set[str]:
    """The action names an ``actions`` response lists (``{"actions": {group: [names]}}``)."""
    actions = body.get("actions") if isinstance(body, dict) else None
    if isinstance(actions, list):
        return {name for name in actions if isinstance(name, str)}
    if not isinstance(actions, dict):
        return set()
    return {
        name
        for names in actions.values()
        if isinstance(names, list)
        for name in names
        if isinstance(name, str)
    }


def record_listed_actions(destination: ObjectStoragePath, day: str, names: Iterable[str]) -> list[str]:
    """Add the actions the ``actions`` endpoint lists; return those not listed before (none at first)."""
    path = registry_path(destination)
    current = read_document(path)
    known = current.get("listed_actions") or {}
    new = sorted(set(names) - set(known))
    if new:
        latest = merge_names(read_document(path), "listed_actions", {n: {"first_seen": day} for n in new})
        write_document(path, latest)
    return new if known else []


__all__ = [
    "MAX_REGISTRY_NAMES",
    "REGISTRY_DIR",
    "SAMPLE_PER_PAGE",
    "SUMMARY_EXAMPLES",
    "Drift",
    "NameSampler",
    "listed_actions",
    "record_listed_actions",
    "record_window_names",
    "registry_path",
    "sample_positions",
]
