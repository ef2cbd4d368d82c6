"""Deterministic audit events for the fake server: generation, filtering and rendering.

An :class:`EventSet` holds up to millions of events in a few parallel arrays of small integers
(no object per event) and renders an entry's JSON only when it is served.
Everything is derived from the generation parameters, so the same parameters always give the same
entries, byte for byte, in any process.

Events are stored in API order: newest first, and inside a second in a fixed order. An event's
position in that order (its *index*) is therefore both its identity and the tiebreak that makes
pagination inside a crowded second well defined.
"""

from __future__ import annotations

import math
import random
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import msgspec

from .catalogue import ACTION_CODES, GENERATED_ACTIONS, KNOWN_ACTIONS, PROFILES, EntityType
from .org import DETAIL_BUILDERS, USER_COUNT, Directory

_ACTION_JSON: tuple[bytes, ...] = tuple(msgspec.json.encode(name) for name in GENERATED_ACTIONS)

# Per-event flag bits.
_LATE = 1  # arrives late: invisible until date_create + late_delay
_SCHEMA_V2 = 2  # carries an unknown top-level field
_CLIENT_INFO = 4  # carries an unknown nested field in context
_VIA_APP = 8  # performed through an app: context.app is present (file uploads only)

_SCHEMA_V2_SHARE = 0.05
_CLIENT_INFO_SHARE = 0.05
_VIA_APP_SHARE = 0.2

# Field order is fixed here once; every entry is one %-format of pre-encoded JSON fragments.
_ENTRY_TEMPLATE = (
    b'{"id":"%s","date_create":%d,"action":%s,"actor":%s,"entity":%s,'
    b'"context":{"location":%s,"ua":%s,"ip_address":%s,"session_id":%d%s}%s}'
)

_USER_AGENTS: tuple[bytes, ...] = tuple(
    msgspec.json.encode(ua)
    for ua in (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Slack/4.38.125 Chrome/122.0.6261.156 Electron/29.4.0 Safari/537.36 AppleWebKit/537.36 Sonic",
        "com.tinyspeck.chatlyio/24.05.10 (iPhone; iOS 17.5; Scale/3.00)",
        "Slack/24.05.10.0 (Android 14; Pixel 8)",
        "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
    )
)
_CLIENT_INFO_JSON: tuple[bytes, ...] = (
    b'{"platform":"desktop","version":"4.38.125"}',
    b'{"platform":"ios","version":"24.05.10"}',
    b'{"platform":"android","version":"24.05.10.0"}',
)

_BURST_SIZE = (10, 200)
_UUID_VERSION_BITS = bytes((byte & 0x0F) | 0x40 for byte in range(256))
_UUID_VARIANT_BITS = bytes((byte & 0x3F) | 0x80 for byte in range(256))


def to_unix_seconds(value: datetime | int) -> int:
    """Return ``value`` as whole Unix seconds, rounding a datetime up like the API's ``oldest`` mapping.

    Naive datetimes are refused: an audit window that silently follows the machine's time zone is a
    bug waiting to happen.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{value.isoformat()} has no time zone: pass an aware datetime (e.g. UTC)")
        return math.ceil(value.timestamp())
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an aware datetime or int Unix seconds, got {type(value).__name__}")
    return value


def default_span(today: date | None = None) -> tuple[int, int]:
    """Return ``[start, end)`` covering the three whole UTC days before ``today`` (default: now).

    A daily DAG run for today's logical date reads yesterday, so the demo always finds data.
    """
    today = today or datetime.now(timezone.utc).date()
    end = datetime(today.year, today.month, today.day, tzinfo=timezone.utc)
    return to_unix_seconds(end - timedelta(days=3)), to_unix_seconds(end)


@dataclass(frozen=True)
class EntryFilter:
    """The ``action``/``actor``/``entity`` filters of a logs query, resolved to event codes.

    ``None`` means "not filtered". An actor or entity id the org does not have resolves to a filter
    that matches nothing (the real API answers such a query with an empty page, not an error).
    """

    action_codes: frozenset[int] | None = None
    actor: int | None = None
    entity: tuple[EntityType, int] | None = None
    matches_nothing: bool = False

    @property
    def selects_everything(self) -> bool:
        """True when no filter is set, so every event in the range matches."""
        return self == _NO_FILTER


_NO_FILTER = EntryFilter()


class UnknownActionError(ValueError):
    """An ``action`` filter names an action the API does not know."""


@dataclass(frozen=True)
class RenderedEntries:
    """Every entry of an event set rendered once, for serving at memory speed (bench mode).

    ``buffer`` holds all entries in API order separated by commas, so the entries ``i..j-1`` are the
    single slice ``buffer[offsets[i]:offsets[j] - 1]`` — a page body needs no join.
    """

    buffer: bytearray
    offsets: array[int]

    def entry(self, index: int) -> memoryview:
        """The bytes of one entry."""
        return memoryview(self.buffer)[self.offsets[index] : self.offsets[index + 1] - 1]

    def run(self, begin: int, end: int) -> memoryview:
        """The comma-separated entries ``begin..end-1``, ready to sit between ``[`` and ``]``."""
        return memoryview(self.buffer)[self.offsets[begin] : self.offsets[end] - 1]


@dataclass(eq=False, repr=False, kw_only=True)
class EventSet:
    """A fixed, deterministic set of audit events in API order (newest first).

    Build one with :meth:`generate`. Indexes run from 0 (newest) to ``len - 1`` (oldest).
    """

    # Dates are stored negated so that API order (date descending) is ascending for bisect.
    _neg_dates: array[int]
    _actions: bytearray
    _actors: array[int]
    _entities: array[int]
    _variants: bytes
    _flags: bytearray
    _directory: Directory
    _id_bytes: bytes
    late_delay: int
    span: tuple[int, int]
    #: The first instant at which every event is visible; before it, visibility is per event.
    all_visible_at: int = field(init=False)

    def __post_init__(self) -> None:
        has_late = any(flag & _LATE for flag in self._flags)
        newest = -self._neg_dates[0] if self._neg_dates else self.span[0]
        self.all_visible_at = newest + (self.late_delay if has_late else 0)

    @classmethod
    def generate(
        cls,
        *,
        events: int,
        seed: int,
        start: datetime | int,
        end: datetime | int,
        late_fraction: float = 0.0,
        late_delay: int = 0,
        burst_fraction: float = 0.2,
    ) -> EventSet:
        """Generate ``events`` events in ``[start, end)``, the same ones for the same arguments.

        About ``burst_fraction`` of the events come in bursts of 10-200 events sharing one second;
        the first bursts sit on the first and the last second of the span, and a few single events
        always land on exactly ``start`` and ``end - 1``, so boundary and pagination bugs show.
        ``late_fraction`` of the events arrive late: invisible until ``date_create + late_delay``.
        """
        start_s, end_s = to_unix_seconds(start), to_unix_seconds(end)
        if events < 0:
            raise ValueError(f"events must be >= 0, got {events}")
        if end_s <= start_s:
            raise ValueError(f"end ({end_s}) must be after start ({start_s}): the span is [start, end)")
        if not 0.0 <= late_fraction <= 1.0 or not 0.0 <= burst_fraction <= 1.0:
            raise ValueError("late_fraction and burst_fraction are shares: pass values between 0 and 1")
        if late_delay < 0:
            raise ValueError(f"late_delay is a delay in seconds: it must be >= 0, got {late_delay}")
        params = f"v1:{seed}:{events}:{start_s}:{end_s}:{late_fraction}:{burst_fraction}"
        rng = random.Random(params)
        directory = Directory(random.Random(f"directory:{seed}"))
        seconds = _draw_seconds(rng, events, start_s, end_s, burst_fraction)
        seconds.sort(reverse=True)
        actions = bytearray(rng.choices(range(len(PROFILES)), weights=[p.weight for p in PROFILES], k=events))
        actors = array("H", rng.choices(range(USER_COUNT), weights=_zipf_weights(USER_COUNT), k=events))
        entities = array("I", _draw_entities(rng, actions, actors, directory))
        return cls(
            _neg_dates=array("q", (-second for second in seconds)),
            _actions=actions,
            _actors=actors,
            _entities=entities,
            _variants=rng.randbytes(events),
            _flags=_draw_flags(rng, actions, late_fraction),
            _directory=directory,
            _id_bytes=_draw_uuid4_bytes(rng, events),
            late_delay=late_delay,
            span=(start_s, end_s),
        )

    def __len__(self) -> int:
        return len(self._neg_dates)

    def date_create(self, index: int) -> int:
        """The event's ``date_create`` (Unix seconds)."""
        return -self._neg_dates[index]

    def entry_id(self, index: int) -> str:
        """The event's ``id``: a random (version 4) UUID drawn from the seed."""
        h = self._id_bytes[index * 16 : index * 16 + 16].hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def action(self, index: int) -> str:
        """The event's ``action`` name."""
        return GENERATED_ACTIONS[self._actions[index]]

    def is_late(self, index: int) -> bool:
        """Whether the event arrives ``late_delay`` seconds after it happened."""
        return bool(self._flags[index] & _LATE)

    def visible_at(self, index: int) -> int:
        """The first instant the API returns the event: when it happened, or later if it is late."""
        return self.date_create(index) + (self.late_delay if self._flags[index] & _LATE else 0)

    def index_range(self, oldest: int, latest: int) -> range:
        """The indexes of the events with ``oldest <= date_create <= latest`` (both inclusive)."""
        return range(bisect_left(self._neg_dates, -latest), bisect_right(self._neg_dates, -oldest))

    def second_end(self, index: int) -> int:
        """The index just after the last event sharing ``index``'s second."""
        return bisect_right(self._neg_dates, self._neg_dates[index], lo=index)

    def entity_ids(self, entity_type: EntityType) -> list[str]:
        """The ids of the org's objects of one entity type."""
        return list(self._directory.entity_ids[entity_type])

    def entity_id(self, index: int) -> str:
        """The id of the event's target entity."""
        entity_type = PROFILES[self._actions[index]].entity_type
        return self._directory.entity_ids[entity_type][self._entities[index]]

    def compile_filter(
        self,
        action: str | Sequence[str] | None = None,
        actor: str | None = None,
        entity: str | None = None,
    ) -> EntryFilter:
        """Resolve the query's filters; raise :class:`UnknownActionError` for an unknown action name.

        ``action`` is the comma-separated string the API takes, or a sequence of names.
        """
        if not (action or actor or entity):
            return _NO_FILTER
        codes = self._action_codes(action) if action else None
        actor_ref = self._directory.entity_index.get(actor) if actor else None
        entity_ref = self._directory.entity_index.get(entity) if entity else None
        unknown_actor = bool(actor) and (actor_ref is None or actor_ref[0] != "user")
        unknown_entity = bool(entity) and entity_ref is None
        return EntryFilter(
            action_codes=codes,
            actor=actor_ref[1] if actor_ref else None,
            entity=entity_ref,
            matches_nothing=(codes is not None and not codes) or unknown_actor or unknown_entity,
        )

    @staticmethod
    def _action_codes(action: str | Sequence[str]) -> frozenset[int]:
        """The codes of the named actions the generator produces (known but never generated: none)."""
        names = [name.strip() for name in action.split(",")] if isinstance(action, str) else list(action)
        unknown = sorted(name for name in names if name not in KNOWN_ACTIONS)
        if unknown:
            raise UnknownActionError(f"unknown action(s) {', '.join(unknown)}: see the actions endpoint")
        return frozenset(ACTION_CODES[name] for name in names if name in ACTION_CODES)

    def matches(self, index: int, entry_filter: EntryFilter) -> bool:
        """Whether the event passes the filter (the date range is checked by :meth:`index_range`)."""
        if entry_filter.matches_nothing:
            return False
        action = self._actions[index]
        if entry_filter.action_codes is not None and action not in entry_filter.action_codes:
            return False
        if entry_filter.actor is not None and self._actors[index] != entry_filter.actor:
            return False
        if entry_filter.entity is not None:
            kind, number = entry_filter.entity
            return PROFILES[action].entity_type == kind and self._entities[index] == number
        return True

    def select(self, indexes: Iterable[int], entry_filter: EntryFilter, now: float | None) -> Iterator[int]:
        """Yield the indexes that pass the filter and, unless ``now`` is None, are visible at ``now``."""
        # Past all_visible_at every event is visible: skip the per-event check on the hot path.
        horizon = now if now is not None and now < self.all_visible_at else None
        for index in indexes:
            if horizon is not None and self.visible_at(index) > horizon:
                continue
            if entry_filter.selects_everything or self.matches(index, entry_filter):
                yield index

    def render(self, index: int) -> bytes:
        """Render the event as the API's JSON entry. The same event always gives the same bytes."""
        d = self._directory
        code = self._actions[index]
        profile = PROFILES[code]
        actor = self._actors[index]
        entity = self._entities[index]
        variant = self._variants[index]
        flags = self._flags[index]
        created = -self._neg_dates[index]
        context_extra = b""
        if flags & _VIA_APP:
            context_extra += b',"app":' + d.app_json[variant % len(d.app_json)]
        if flags & _CLIENT_INFO:
            context_extra += b',"client_info":' + _CLIENT_INFO_JSON[variant % len(_CLIENT_INFO_JSON)]
        tail = b""
        details_builder = DETAIL_BUILDERS.get(profile.name)
        details = details_builder(variant, entity, d) if details_builder else None
        if details is not None:
            tail += b',"details":' + msgspec.json.encode(details)
        if flags & _SCHEMA_V2:
            tail += b',"schema_version":2'
        # One %-format instead of a list join: rendering is the fake server's hot path.
        return _ENTRY_TEMPLATE % (
            self.entry_id(index).encode(),
            created,
            _ACTION_JSON[code],
            d.actor_json[actor],
            d.entity_json[profile.entity_type][entity],
            d.enterprise_location if profile.org_level else d.actor_location[actor],
            _USER_AGENTS[variant % len(_USER_AGENTS)],
            d.actor_ips_json[actor][variant & 1],
            # A session lasts eight hours per user: realistic repetition, derived, never stored.
            1_600_000_000_000 + actor * 7_919_003 + created // 28_800,
            context_extra,
            tail,
        )

    def render_all(self) -> RenderedEntries:
        """Render every entry once, for serving without per-request work (bench mode).

        Entries are appended to one buffer, never held as separate objects, so the rendered set
        exists once in memory (its size: docs/performance.md, "The fake server").
        """
        offsets = array("Q", [0])
        buffer = bytearray()
        for index in range(len(self)):
            buffer += self.render(index)
            buffer += b","
            offsets.append(len(buffer))
        return RenderedEntries(buffer=buffer, offsets=offsets)


def _draw_seconds(rng: random.Random, count: int, start: int, end: int, burst_fraction: float) -> list[int]:
    """Draw ``count`` event seconds in ``[start, end)``: boundary events, bursts, then uniform noise."""
    last = end - 1
    seconds = [start, last, start, last][: min(count, 4)]
    burst_budget = int((count - len(seconds)) * burst_fraction)
    burst_anchors = iter((last, start))  # the first bursts sit on the boundary seconds
    while burst_budget > 0:
        size = min(rng.randint(*_BURST_SIZE), burst_budget)
        second = next(burst_anchors, None)
        seconds += [rng.randrange(start, end) if second is None else second] * size
        burst_budget -= size
    seconds += (rng.randrange(start, end) for _ in range(count - len(seconds)))
    return seconds


def _draw_uuid4_bytes(rng: random.Random, count: int) -> bytes:
    """Draw ``count`` random UUIDs at once, as 16-byte records in one bytes object."""
    raw = bytearray(rng.randbytes(16 * count))
    # Stamp the version (4) and variant (RFC 4122) bits, one table lookup per affected byte.
    raw[6::16] = raw[6::16].translate(_UUID_VERSION_BITS)
    raw[8::16] = raw[8::16].translate(_UUID_VARIANT_BITS)
    return bytes(raw)


def _zipf_weights(count: int) -> list[float]:
    """A few heavy users and a long tail, like any real org."""
    return [1.0 / (rank + 1) for rank in range(count)]


def _draw_entities(
    rng: random.Random, actions: bytearray, actors: array[int], directory: Directory
) -> Iterator[int]:
    """Draw each event's target in the pool of its action's entity type."""
    pool_sizes = {kind: len(pool) for kind, pool in directory.entity_json.items()}
    for action, actor in zip(actions, actors, strict=True):
        profile = PROFILES[action]
        yield actor if profile.targets_self else rng.randrange(pool_sizes[profile.entity_type])


def _draw_flags(rng: random.Random, actions: bytearray, late_fraction: float) -> bytearray:
    """Draw each event's flags: late arrival, unknown fields, performed through an app."""
    uploaded = ACTION_CODES["file_uploaded"]
    flags = bytearray(len(actions))
    for index, action in enumerate(actions):
        flag = _LATE if late_fraction and rng.random() < late_fraction else 0
        draw = rng.random()
        if draw < _SCHEMA_V2_SHARE:
            flag |= _SCHEMA_V2
        elif draw < _SCHEMA_V2_SHARE + _CLIENT_INFO_SHARE:
            flag |= _CLIENT_INFO
        if action == uploaded and rng.random() < _VIA_APP_SHARE:
            flag |= _VIA_APP
        flags[index] = flag
    return flags
