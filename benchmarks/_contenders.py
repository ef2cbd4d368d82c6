"""The contenders of the ingest benchmark: ways to move one window of audit events off the API.

Each contender is an async function ``(job, session) -> events`` that reads every page of one
window through ``session`` and returns how many entries it saw. :func:`measure` runs one of them
in the current process (``bench_ingest.py --contender NAME`` starts a fresh process for each) and
reports time, memory and traffic. Every contender gets the same aiohttp session setup, so they
differ only in what they do with the bytes:

- ``wire``: read each body and find the cursor, nothing else: the limit of machine and server.
  (It also splits the page into raw entries to count them: msgspec does that as fast as it skips
  them to reach the cursor, ~5-6 ms of CPU per 10k-entry page either way, and the count lets the
  harness check that every contender saw every event.)
- ``raw``: ``orjson.loads`` each page, write nothing: the usual hand-written "fast" loop.
- ``slack_sdk``: slack_sdk's ``AsyncAuditLogsClient.logs(cursor=...)`` loop writing each entry as
  a JSON line with the standard library: what a user writes today.
- ``ours*``: the provider's :func:`ingest_window` landing the window in a local directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import msgspec
from _server import TOKEN

MAX_LIMIT = 9999
_MB = 1_000_000


@dataclass(frozen=True)
class Job:
    """What every contender is asked to do: read ``[oldest, latest]`` (inclusive Unix seconds)."""

    base_url: str
    oldest: int
    latest: int
    destination: Path  # an empty directory the contender may write to
    limit: int = MAX_LIMIT
    token: str = TOKEN

    @property
    def logs_url(self) -> str:
        return self.base_url.rstrip("/") + "/logs"

    def params(self, cursor: str | None) -> dict[str, str]:
        params = {"oldest": str(self.oldest), "latest": str(self.latest), "limit": str(self.limit)}
        if cursor:
            params["cursor"] = cursor
        return params

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class TrafficMeter:
    """Counts requests, response statuses and body bytes of every session it is attached to.

    An aiohttp trace hook rather than counters inside each contender, so slack_sdk and our client
    are counted the same way as the hand-written loops (retries included). aiohttp reports a body
    once, when it has been read in full, so the cost is one callback per page.
    """

    def __init__(self) -> None:
        self.requests = 0
        self.body_bytes = 0
        self.statuses: dict[int, int] = {}
        self.trace_config = aiohttp.TraceConfig()
        self.trace_config.on_request_start.append(self._on_request_start)
        self.trace_config.on_request_end.append(self._on_request_end)
        self.trace_config.on_response_chunk_received.append(self._on_body)

    def session(self) -> aiohttp.ClientSession:
        """A new session reporting to this meter (one connection pool, like a long-lived client)."""
        return aiohttp.ClientSession(trace_configs=[self.trace_config])

    async def _on_request_start(self, _session: Any, _context: SimpleNamespace, _params: Any) -> None:
        self.requests += 1

    async def _on_request_end(
        self, _session: Any, _context: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        status = params.response.status
        self.statuses[status] = self.statuses.get(status, 0) + 1

    async def _on_body(
        self, _session: Any, _context: SimpleNamespace, params: aiohttp.TraceResponseChunkReceivedParams
    ) -> None:
        self.body_bytes += len(params.chunk)


class _Metadata(msgspec.Struct):
    next_cursor: str = ""


class _Envelope(msgspec.Struct):
    """A page with its entries split but not decoded: the least work that still counts them."""

    entries: list[msgspec.Raw]
    response_metadata: _Metadata | None = None


_envelope_decoder = msgspec.json.Decoder(_Envelope)


def _fail(status: int, body: bytes) -> RuntimeError:
    return RuntimeError(
        f"the fake server answered HTTP {status}: {body[:200]!r}; is it running with these events?"
    )


async def wire(job: Job, session: aiohttp.ClientSession) -> int:
    """GET every page, read its bytes and the cursor; entries are split to be counted, never decoded."""
    events, cursor = 0, None
    while True:
        async with session.get(job.logs_url, params=job.params(cursor), headers=job.headers) as response:
            body = await response.read()
            if response.status != 200:
                raise _fail(response.status, body)
        page = _envelope_decoder.decode(body)
        events += len(page.entries)
        cursor = page.response_metadata.next_cursor if page.response_metadata else ""
        if not cursor:
            return events


async def raw(job: Job, session: aiohttp.ClientSession) -> int:
    """GET every page and ``orjson.loads`` it, following the cursor; write nothing."""
    import orjson

    events, cursor = 0, None
    while True:
        async with session.get(job.logs_url, params=job.params(cursor), headers=job.headers) as response:
            body = await response.read()
            if response.status != 200:
                raise _fail(response.status, body)
        page = orjson.loads(body)
        events += len(page["entries"])
        cursor = page.get("response_metadata", {}).get("next_cursor", "")
        if not cursor:
            return events


async def slack_sdk(job: Job, session: aiohttp.ClientSession) -> int:
    """slack_sdk's client, ``logs(cursor=...)`` page after page, each entry written with json.dumps.

    It gets the shared session like every contender (without one, slack_sdk opens a connection per
    call), so the contenders differ only in what they do with the bytes.
    """
    from slack_sdk.audit_logs.async_client import AsyncAuditLogsClient

    client = AsyncAuditLogsClient(token=job.token, base_url=job.base_url, session=session)
    events, cursor = 0, None
    # A blocking file in a coroutine, as such loops are written (its cost is part of what is measured).
    with open(job.destination / "slack_sdk.jsonl", "w", encoding="utf-8") as out:  # noqa: ASYNC230
        while True:
            response = await client.logs(oldest=job.oldest, latest=job.latest, limit=job.limit, cursor=cursor)
            if response.status_code != 200 or response.body is None:
                raise _fail(response.status_code, (response.raw_body or "").encode())
            for entry in response.body["entries"]:
                out.write(json.dumps(entry) + "\n")
                events += 1
            cursor = response.body.get("response_metadata", {}).get("next_cursor", "")
            if not cursor:
                return events


def _ours(
    *, compression: str | None, interval: timedelta | None
) -> Callable[[Job, aiohttp.ClientSession], Awaitable[int]]:
    """The provider's ingest_window into ``job.destination``; ``interval=None`` means the whole window."""

    async def ours(job: Job, session: aiohttp.ClientSession) -> int:
        from airflow_provider_slack_audit.client import AsyncAuditLogsClient
        from airflow_provider_slack_audit.ingest.pipeline import ingest_window
        from airflow_provider_slack_audit.ingest.spec import IngestSpec
        from airflow_provider_slack_audit.ingest.windows import Window

        # The window [oldest, latest + 1) queries exactly [oldest, latest] (latest is inclusive).
        window = Window(
            datetime.fromtimestamp(job.oldest, tz=timezone.utc),
            datetime.fromtimestamp(job.latest + 1, tz=timezone.utc),
        )
        spec = IngestSpec(
            window=window,
            interval=interval if interval is not None else window.end - window.start,
            destination=job.destination.as_uri(),
            compression="gzip" if compression == "gzip" else None,
            settle_lag=timedelta(0),
            limit=job.limit,
        )
        client = AsyncAuditLogsClient(job.token, base_url=job.base_url, session=session)
        summary = await ingest_window(client, spec)
        return summary.events

    return ours


Contender = Callable[[Job, aiohttp.ClientSession], Awaitable[int]]

CONTENDERS: dict[str, Contender] = {
    "wire": wire,
    "raw": raw,
    "slack_sdk": slack_sdk,
    "ours": _ours(compression=None, interval=None),
    "ours_gzip": _ours(compression="gzip", interval=None),
    "ours_1h": _ours(compression=None, interval=timedelta(hours=1)),
}
DESCRIPTIONS: dict[str, str] = {
    "wire": "aiohttp GET, body read, cursor found",
    "raw": "aiohttp GET + orjson.loads, nothing written",
    "slack_sdk": "slack_sdk logs(cursor=) loop, json.dumps lines",
    "ours": "ingest_window, one interval, .jsonl",
    "ours_gzip": "ingest_window, one interval, .jsonl.gz",
    "ours_1h": "ingest_window, 1 h intervals, .jsonl",
}


def current_rss_mb() -> float:
    """The resident set size now (Linux: /proc; elsewhere the peak so far, the best available)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            resident_pages = int(statm.read().split()[1])
    except OSError:
        return peak_rss_mb()
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / _MB


def peak_rss_mb() -> float:
    """The peak resident set size of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / _MB if sys.platform == "darwin" else peak * 1024 / _MB


def measure(name: str, job: Job) -> dict[str, Any]:
    """Run one contender once and report its figures.

    The clock runs from just before the first request to the return of the contender, which comes
    after its last byte is written (and, for ours, committed); the CPU time is the process's over the
    same span. Imports and the session are set up
    before the clock starts and before the baseline RSS is taken, so growth is what the run costs.
    """
    contender = CONTENDERS[name]
    meter = TrafficMeter()

    async def run() -> tuple[int, float, float, float]:
        async with meter.session() as session:
            rss_before = current_rss_mb()
            cpu_started = time.process_time()
            started = time.perf_counter()
            events = await contender(job, session)
            return events, time.perf_counter() - started, time.process_time() - cpu_started, rss_before

    _preload(name)
    events, seconds, cpu_seconds, rss_before = asyncio.run(run())
    peak = peak_rss_mb()
    return {
        "contender": name,
        "events": events,
        "seconds": seconds,
        "requests": meter.requests,
        "statuses": {str(status): count for status, count in sorted(meter.statuses.items())},
        "body_bytes": meter.body_bytes,
        "events_per_s": events / seconds,
        # Every thread of the process: the event loop's and the stream's (both hold the GIL).
        "cpu_seconds": cpu_seconds,
        "cpu_us_per_event": cpu_seconds / events * 1e6 if events else 0.0,
        "mb_per_s": meter.body_bytes / _MB / seconds,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak,
        "rss_growth_mb": peak - rss_before,
    }


def _preload(name: str) -> None:
    """Import what the contender needs before the clock and the RSS baseline (imports are not ingest)."""
    if name == "raw":
        import orjson  # noqa: F401
    elif name == "slack_sdk":
        import slack_sdk.audit_logs.async_client  # noqa: F401
    elif name.startswith("ours"):
        # The landing imports Airflow (ObjectStoragePath) on first use: not part of the ingest.
        import tempfile

        import airflow_provider_slack_audit.ingest.landing
        import airflow_provider_slack_audit.ingest.pipeline  # noqa: F401
        from airflow_provider_slack_audit.version_compat import ObjectStoragePath

        # The first filesystem an ObjectStoragePath opens makes Airflow register every provider's
        # (importing s3fs, botocore & co.: about a second and tens of MB, once per process, like
        # the imports above): a triggerer pays it once, not per window.
        _ = ObjectStoragePath(Path(tempfile.gettempdir()).as_uri()).fs
