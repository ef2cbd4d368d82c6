"""Every argument, at and past every bound: a call either works or raises ValueError/TypeError
before any request (the fake server's request log stays empty).

Each generated argument carries its verdict (accepted as what, or refused), derived from the API
facts and the documented rules rather than from the code under test; the tests check the code
agrees both ways: what must be refused is refused, and what is fine is accepted as the same value.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, event, find, given, settings
from hypothesis import strategies as st

from airflow_provider_slack_audit.client import AsyncAuditLogsClient
from airflow_provider_slack_audit.ingest import Window
from airflow_provider_slack_audit.ingest.pipeline import ingest_window
from airflow_provider_slack_audit.ingest.spec import IngestSpec
from airflow_provider_slack_audit.operators.slack_audit import SlackAuditLogsOperator
from airflow_provider_slack_audit.testing import KNOWN_ACTIONS, FakeAuditLogsServer
from airflow_provider_slack_audit.triggers.slack_audit import SlackAuditLogsTrigger
from airflow_provider_slack_audit.version_compat import AirflowFailException, TaskDeferred

TOKEN = "xoxp-test"
EARLIEST = datetime(2018, 3, 1, tzinfo=timezone.utc)  # no audit data before this instant
MAX_ACTIONS = 30
MAX_LIMIT = 9999
MAX_INTERVALS = 100_000
MAX_FUTURE = timedelta(days=1)  # a window may end at most this long after now
RUN_START = datetime(2026, 1, 4, tzinfo=timezone.utc)
RUN_END = datetime(2026, 1, 5, tzinfo=timezone.utc)
CONTEXT = {"data_interval_start": RUN_START, "data_interval_end": RUN_END}

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Refused:
    """The verdict of an argument the provider must refuse."""

    def __repr__(self) -> str:
        return "REFUSED"


REFUSED = Refused()


@dataclass(frozen=True)
class Arg:
    """A generated argument and its verdict: the value it must be accepted as, or REFUSED."""

    value: Any
    verdict: Any


def accepted(strategy: st.SearchStrategy[Any], normalize: Any = lambda v: v) -> st.SearchStrategy[Arg]:
    return strategy.map(lambda value: Arg(value, normalize(value)))


def refused(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Arg]:
    return strategy.map(lambda value: Arg(value, REFUSED))


# Strategies --------------------------------------------------------------------------------------

ZONES = st.sampled_from(
    [timezone.utc, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)), timezone.max]
)
AWARE = st.datetimes(min_value=datetime(2017, 6, 1), max_value=datetime(2031, 1, 1), timezones=ZONES)
# Instants around the run's data interval, so that oldest < latest is common.
NEAR_THE_RUN = st.datetimes(
    min_value=datetime(2025, 12, 20), max_value=datetime(2026, 1, 20), timezones=ZONES
)
NAIVE = st.datetimes(min_value=datetime(2017, 6, 1), max_value=datetime(2031, 1, 1))


def _utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


def _not_iso(text: str) -> bool:
    try:
        datetime.fromisoformat(text.strip().removesuffix("Z").removesuffix("z"))
    except ValueError:
        return True
    return False


@dataclass(frozen=True)
class Domain:
    """The values of one argument: ``good`` ones (accepted, or refused only by an explicit rule
    that the verdict computes) and ``bad`` ones (always refused)."""

    good: st.SearchStrategy[Arg]
    bad: st.SearchStrategy[Arg]

    def any(self) -> st.SearchStrategy[Arg]:
        return st.one_of(self.good, self.bad)


def arguments(domains: dict[str, Domain]) -> st.SearchStrategy[dict[str, Arg]]:
    """Arguments with at most two bad ones, so fully valid calls are common, not one in a thousand."""

    @st.composite
    def draw_arguments(draw: st.DrawFn) -> dict[str, Arg]:
        bad = draw(st.just(set()) | st.sets(st.sampled_from(sorted(domains)), min_size=1, max_size=2))
        return {name: draw(domain.bad if name in bad else domain.good) for name, domain in domains.items()}

    return draw_arguments()


# oldest/latest: aware datetimes and ISO strings with an offset are instants; a bare date is that
# day's midnight UTC; anything without a time zone, unparseable or not a date is refused.
INSTANTS = Domain(
    good=st.one_of(
        st.just(Arg(None, None)),
        # A blank string is a template that rendered empty: not given, like None.
        st.sampled_from(["", " ", "\t\n"]).map(lambda text: Arg(text, None)),
        accepted(NEAR_THE_RUN, _utc),
        accepted(AWARE, _utc),
        accepted(AWARE.map(datetime.isoformat), lambda text: _utc(datetime.fromisoformat(text))),
        accepted(
            AWARE.map(lambda d: _utc(d).replace(tzinfo=None).isoformat() + "Z"),
            lambda text: datetime.fromisoformat(text[:-1]).replace(tzinfo=timezone.utc),
        ),
        accepted(
            st.dates(min_value=date(2017, 6, 1), max_value=date(2031, 1, 1)).map(date.isoformat),
            lambda text: datetime.fromisoformat(text).replace(tzinfo=timezone.utc),
        ),
    ),
    bad=st.one_of(
        refused(NAIVE),
        refused(NAIVE.map(datetime.isoformat)),
        refused(st.text(max_size=30).filter(lambda text: bool(text.strip()) and _not_iso(text))),
        refused(st.integers() | st.floats() | st.booleans() | st.just(date(2026, 1, 4))),
    ),
)

# interval: a timedelta of at least one second (the API's resolution) and at most a year; what
# lies beyond a year is left to the provider's own bound, and the extremes that overflow are
# test_absurd_timedeltas_are_refused_before_the_task_defers.
INTERVALS = Domain(
    good=st.one_of(
        st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=366)).map(
            lambda value: Arg(value, value)
        ),
        st.sampled_from([timedelta(seconds=1), timedelta(hours=1), timedelta(days=1)]).map(
            lambda value: Arg(value, value)
        ),
    ),
    bad=st.one_of(
        refused(st.timedeltas(min_value=timedelta(days=-2), max_value=timedelta(microseconds=999_999))),
        refused(st.sampled_from([timedelta(0), timedelta(microseconds=1), timedelta(seconds=-1)])),
        refused(st.integers() | st.none() | st.just("PT1H")),
    ),
)
# settle_lag: zero or more, up to a day (the API shows events within minutes).
SETTLE_LAGS = Domain(
    good=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=1)).map(
        lambda value: Arg(value, value)
    ),
    bad=st.one_of(
        refused(st.timedeltas(min_value=timedelta(days=-2), max_value=-timedelta(microseconds=1))),
        refused(st.integers(min_value=1) | st.just("5m")),
    ),
)

NAME = st.one_of(st.sampled_from(sorted(KNOWN_ACTIONS)), st.text(max_size=12))


def _names_verdict(names: list[Any], *, listed: bool = True) -> Any:
    """The client's verdict: names in the order given; a listed name holding a comma is two names."""
    if not all(isinstance(name, str) and name.strip() for name in names):
        return REFUSED
    if listed and any("," in name for name in names):
        return REFUSED
    if not 1 <= len(names) <= MAX_ACTIONS:
        return REFUSED
    return tuple(name.strip() for name in names)


def _spec_actions(value: Any) -> Any:
    """The spec's verdict: one spelling per filter, sorted and de-duplicated, at most 30 distinct."""
    if value is None:
        return None
    if isinstance(value, str):
        names: Any = [name.strip() for name in value.split(",")]
    elif isinstance(value, list):
        names = value
    else:
        return REFUSED
    if not names or not all(isinstance(name, str) and name.strip() and "," not in name for name in names):
        return REFUSED
    unique = tuple(sorted({name.strip() for name in names}))
    return unique if len(unique) <= MAX_ACTIONS else REFUSED


# action: one name, a comma-separated string, or a list of names; 1..30 names, none empty.
ACTIONS = Domain(
    good=st.one_of(
        st.just(Arg(None, None)),
        st.lists(st.sampled_from(sorted(KNOWN_ACTIONS)), min_size=1, max_size=MAX_ACTIONS).map(
            lambda names: Arg(names, tuple(names))
        ),
        st.lists(st.sampled_from(sorted(KNOWN_ACTIONS)), min_size=1, max_size=MAX_ACTIONS).map(
            lambda names: Arg(" , ".join(names), tuple(names))
        ),
        st.text(max_size=60).map(lambda text: Arg(text, _names_verdict(text.split(","), listed=False))),
        # The same names in another order or repeated: one query for the spec.
        st.lists(st.sampled_from(sorted(KNOWN_ACTIONS)[:8]), min_size=2, max_size=12).map(
            lambda names: Arg(names, _names_verdict(names))
        ),
    ),
    bad=st.one_of(
        st.lists(st.one_of(NAME, st.integers(), st.none()), max_size=40)
        .filter(lambda names: _names_verdict(names) is REFUSED)
        .map(lambda names: Arg(names, REFUSED)),
        refused(
            st.lists(
                st.sampled_from(sorted(KNOWN_ACTIONS)), min_size=MAX_ACTIONS + 1, max_size=40, unique=True
            )
        ),
        # A comma inside a listed name: ["a,b"] * 16 is 32 names once the API splits them.
        refused(
            st.lists(
                st.sampled_from(["a,b", "user_login,user_logout", ",user_login"]), min_size=1, max_size=16
            )
        ),
        st.sampled_from(
            [
                Arg([], REFUSED),
                Arg("", REFUSED),
                Arg("a,,b", REFUSED),
                Arg([" "], REFUSED),
                Arg(["a,b"] * 16, REFUSED),
            ]
        ),
    ),
)
# actor/entity: an id, or None.
IDS = Domain(
    good=st.one_of(
        st.just(Arg(None, None)),
        st.text(min_size=1, max_size=12).map(lambda text: Arg(text, text if text.strip() else REFUSED)),
    ),
    bad=st.one_of(
        refused(st.sampled_from(["", " ", "\t"])),
        refused(st.integers() | st.lists(st.text(), max_size=2)),
    ),
)
COMPRESSIONS = Domain(
    good=st.sampled_from([Arg("gzip", "gzip"), Arg(None, None)]),
    bad=refused(st.sampled_from(["zip", "GZIP", "", "zstd", 0, True])),
)
OVERWRITES = Domain(
    good=st.sampled_from(
        [Arg(True, True), Arg(False, False), Arg("True", True), Arg("false", False), Arg(" TRUE ", True)]
    ),
    bad=refused(st.sampled_from(["yes", 1, None, "T"])),
)

# destination: an absolute URL with a scheme (the module's fixture stands in for the good one);
# whatever would land relative to the working directory is refused.
THE_DESTINATION = "<the destination fixture>"
RELATIVE_DESTINATIONS = st.sampled_from(
    [
        "None",
        "none",
        "",
        "   ",
        "landing",
        "./landing",
        "../landing",
        "file://relative/x",
        "file:relative",
        "/abs/without/scheme",
        "s3://",
        "s3:///",
    ]
)
DESTINATIONS = Domain(
    good=st.just(Arg(THE_DESTINATION, THE_DESTINATION)),
    bad=st.one_of(
        refused(RELATIVE_DESTINATIONS),
        refused(st.text(max_size=20).filter(lambda text: "://" not in text)),
        refused(st.integers() | st.none()),
    ),
)

OPERATOR_ARGUMENTS = arguments(
    {
        "destination": DESTINATIONS,
        "oldest": INSTANTS,
        "latest": INSTANTS,
        "interval": INTERVALS,
        "action": ACTIONS,
        "actor": IDS,
        "entity": IDS,
        "compression": COMPRESSIONS,
        "settle_lag": SETTLE_LAGS,
        "overwrite": OVERWRITES,
    }
)


def expected_spec(args: dict[str, Arg], destination: str) -> IngestSpec | Refused:
    """The spec the operator must build from ``args``, or REFUSED; by the rules, not by the code."""
    verdicts = {name: arg.verdict for name, arg in args.items()}
    verdicts["action"] = _spec_actions(args["action"].value)
    if any(verdict is REFUSED for verdict in verdicts.values()):
        return REFUSED
    start = args["oldest"].verdict or RUN_START
    end = args["latest"].verdict or RUN_END
    interval = args["interval"].verdict
    if not EARLIEST <= start < end or -(-(end - start) // interval) > MAX_INTERVALS:
        return REFUSED
    if end > datetime.now(timezone.utc) + MAX_FUTURE or _whole_seconds(start, end) == 0:
        return REFUSED
    return IngestSpec(
        window=Window(start, end),
        interval=interval,
        destination=destination,
        action=verdicts["action"],
        actor=args["actor"].verdict,
        entity=args["entity"].verdict,
        compression=args["compression"].verdict,
        settle_lag=args["settle_lag"].verdict,
        overwrite=args["overwrite"].verdict,
        api_snapshot=True,  # the operator lands the daily API snapshot; the bare spec does not
    )


def _whole_seconds(start: datetime, end: datetime) -> int:
    """How many whole Unix seconds [start, end) holds: the API queries ceil(start)..ceil(end) - 1."""
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    first = -(-(start - epoch) // timedelta(seconds=1))
    after_last = -(-(end - epoch) // timedelta(seconds=1))
    return max(0, after_last - first)


# Fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[FakeAuditLogsServer]:
    fake = FakeAuditLogsServer(events=200, seed=1, start=RUN_START, end=RUN_END)
    fake.start_in_thread()
    with pytest.MonkeyPatch.context() as patch:
        conn = {"conn_type": "slack_audit", "password": TOKEN, "extra": {"base_url": fake.base_url}}
        patch.setenv("AIRFLOW_CONN_SLACK_AUDIT_DEFAULT", json.dumps(conn))
        yield fake
    fake.stop()


@pytest.fixture(scope="module")
def destination(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"file://{tmp_path_factory.mktemp('bad_input')}/landing"


# The operator ------------------------------------------------------------------------------------


def operator_with(args: dict[str, Arg], destination: str, *, deferrable: bool) -> SlackAuditLogsOperator:
    values = {name: arg.value for name, arg in args.items()}
    if values.get("destination", THE_DESTINATION) == THE_DESTINATION:
        values["destination"] = destination
    return SlackAuditLogsOperator(task_id="land", deferrable=deferrable, **values)


@pytest.mark.slow  # builds an operator per example
@SETTINGS
@given(args=OPERATOR_ARGUMENTS)
def test_operator_arguments_defer_a_valid_spec_or_fail_before_any_request(
    server: FakeAuditLogsServer, destination: str, args: dict[str, Arg]
) -> None:
    server.reset_log()
    expected = expected_spec(args, destination)
    event("refused" if expected is REFUSED else "accepted")

    with pytest.raises((TaskDeferred, AirflowFailException)) as outcome:
        operator_with(args, destination, deferrable=True).execute(CONTEXT)  # type: ignore[arg-type]

    if expected is REFUSED:
        assert isinstance(outcome.value, AirflowFailException), "a bad argument was accepted"
        assert isinstance(outcome.value.__cause__, ValueError | TypeError)
        # The worker mode refuses the same way, before the hook or the client are touched.
        with pytest.raises(AirflowFailException):
            operator_with(args, destination, deferrable=False).execute(CONTEXT)  # type: ignore[arg-type]
    else:
        assert isinstance(outcome.value, TaskDeferred), f"refused: {outcome.value}"
        trigger = outcome.value.trigger
        assert isinstance(trigger, SlackAuditLogsTrigger)
        # What the triggerer rebuilds from the stored kwargs is the window and options validated here.
        assert IngestSpec.from_json(json.loads(json.dumps(trigger.spec))) == expected
    assert server.requests == []


# The client --------------------------------------------------------------------------------------

SECONDS = Domain(
    good=st.one_of(
        st.just(Arg(None, None)),
        st.integers(min_value=0, max_value=2**41).map(lambda n: Arg(n, n)),
    ),
    bad=st.one_of(
        refused(st.integers(max_value=-1)),
        refused(st.booleans() | st.floats() | st.text(max_size=10) | st.just(RUN_START)),
    ),
)
LIMITS = Domain(
    good=st.one_of(
        st.just(Arg(None, None)),
        st.integers(min_value=1, max_value=MAX_LIMIT).map(lambda n: Arg(n, n)),
        st.sampled_from([Arg(1, 1), Arg(MAX_LIMIT, MAX_LIMIT)]),
    ),
    bad=st.one_of(
        refused(st.integers(max_value=0) | st.integers(min_value=MAX_LIMIT + 1)),
        refused(st.booleans() | st.floats() | st.just("100")),
    ),
)
CURSORS = Domain(
    good=st.one_of(
        st.just(Arg(None, None)),
        st.text(min_size=1, max_size=20).map(lambda text: Arg(text, text if text.strip() else REFUSED)),
    ),
    bad=refused(st.integers() | st.sampled_from(["", "  "])),
)
LOGS_DOMAINS = {
    "oldest": SECONDS,
    "latest": SECONDS,
    "limit": LIMITS,
    "action": Domain(ACTIONS.good, st.one_of(ACTIONS.bad, refused(st.integers()))),
    "actor": IDS,
    "entity": IDS,
}
LOGS_ARGUMENTS = arguments({**LOGS_DOMAINS, "cursor": CURSORS})
PAGES_ARGUMENTS = arguments(LOGS_DOMAINS)


def expected_query(args: dict[str, Arg]) -> dict[str, str] | Refused:
    """The query string ``logs`` must send for ``args``, or REFUSED."""
    if any(arg.verdict is REFUSED for arg in args.values()):
        return REFUSED
    oldest, latest = args["oldest"].verdict, args["latest"].verdict
    if oldest is not None and latest is not None and oldest > latest:
        return REFUSED
    query = {name: arg.verdict for name, arg in args.items() if arg.verdict is not None}
    if "action" in query:
        query["action"] = ",".join(query["action"])
    return {name: str(value) for name, value in query.items()}


async def call_logs(server: FakeAuditLogsServer, args: dict[str, Arg]) -> None:
    client = AsyncAuditLogsClient(TOKEN, base_url=server.base_url, retry_handlers=[])
    await client.logs(**{name: arg.value for name, arg in args.items()})


async def first_page(server: FakeAuditLogsServer, args: dict[str, Arg]) -> None:
    client = AsyncAuditLogsClient(TOKEN, base_url=server.base_url, retry_handlers=[])
    pages = client.pages(**{name: arg.value for name, arg in args.items()})
    try:
        await anext(pages)
    finally:
        await pages.aclose()


@SETTINGS
@given(args=LOGS_ARGUMENTS)
def test_logs_arguments_are_sent_as_given_or_refused_before_any_request(
    server: FakeAuditLogsServer, args: dict[str, Arg]
) -> None:
    server.reset_log()
    expected = expected_query(args)
    event("refused" if expected is REFUSED else "accepted")

    if expected is REFUSED:
        with pytest.raises((ValueError, TypeError)):
            asyncio.run(call_logs(server, args))
        assert server.requests == []
    else:
        asyncio.run(call_logs(server, args))
        (request,) = server.requests
        assert request.query == expected


def error_of(call: Coroutine[Any, Any, None]) -> BaseException | None:
    """Run ``call``; return what it raised, or None."""
    try:
        asyncio.run(call)
    except Exception as error:
        return error
    return None


@SETTINGS
@given(args=PAGES_ARGUMENTS)
def test_pages_arguments_are_checked_before_the_first_request(
    server: FakeAuditLogsServer, args: dict[str, Arg]
) -> None:
    server.reset_log()
    expected = expected_query(args)
    event("refused" if expected is REFUSED else "accepted")

    if expected is REFUSED:
        with pytest.raises((ValueError, TypeError)):
            asyncio.run(first_page(server, args))
        assert server.requests == []
    else:
        # The server may still refuse the query (a range in the future, an unknown action name):
        # that is an API error after the request, never an argument error.
        error = error_of(first_page(server, args))
        assert not isinstance(error, ValueError | TypeError), error
        assert server.requests[0].query == expected


# The spec, as ingest_window takes it -------------------------------------------------------------

SPEC_WINDOW = Window(RUN_START, RUN_START + timedelta(hours=2))


SPEC_ARGUMENTS = arguments(
    {
        "interval": INTERVALS,
        "limit": Domain(LIMITS.good.filter(lambda arg: arg.value is not None), LIMITS.bad),
        "action": ACTIONS,
        "actor": IDS,
        "entity": IDS,
        "compression": COMPRESSIONS,
        "settle_lag": SETTLE_LAGS,
        "overwrite": Domain(
            st.sampled_from([Arg(True, True), Arg(False, False)]), refused(st.sampled_from(["True", 1, None]))
        ),
        "destination": Domain(
            st.just(Arg("dest", "dest")),
            st.one_of(refused(st.sampled_from(["", "   ", None, 7])), refused(RELATIVE_DESTINATIONS)),
        ),
    }
)


@SETTINGS
@given(args=SPEC_ARGUMENTS)
def test_ingest_window_refuses_a_bad_spec_before_any_request(
    server: FakeAuditLogsServer, tmp_path_factory: pytest.TempPathFactory, args: dict[str, Arg]
) -> None:
    server.reset_log()
    values = {name: arg.value for name, arg in args.items()}
    if values["destination"] == "dest":
        values["destination"] = f"file://{tmp_path_factory.getbasetemp()}/spec_landing"
    spec = IngestSpec(window=SPEC_WINDOW, **values)
    must_refuse = any(arg.verdict is REFUSED for arg in args.values())

    if must_refuse:
        client = AsyncAuditLogsClient(TOKEN, base_url=server.base_url)
        with pytest.raises((ValueError, TypeError)):
            asyncio.run(ingest_window(client, spec))
        assert server.requests == []
    else:
        spec.validate()  # a valid spec ingests; test_pipeline.py runs those end to end


# Known extremes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argument",
    [
        {"interval": timedelta.max},
        {"settle_lag": timedelta.max},
        {"settle_lag": timedelta(days=3_000_000)},
    ],
    ids=["interval_max", "settle_lag_max", "settle_lag_past_year_9999"],
)
def test_absurd_timedeltas_are_refused_before_the_task_defers(
    server: FakeAuditLogsServer, destination: str, argument: dict[str, timedelta]
) -> None:
    operator = SlackAuditLogsOperator(task_id="land", destination=destination, **argument)

    with pytest.raises(AirflowFailException) as outcome:
        operator.execute(CONTEXT)  # type: ignore[arg-type]

    assert isinstance(outcome.value.__cause__, ValueError)
    assert server.requests == []


def test_the_strategies_reach_both_verdicts() -> None:
    # Guards the tests above against a strategy change that makes every example refused (or none).
    find(OPERATOR_ARGUMENTS, lambda args: expected_spec(args, "file:///x") is REFUSED)
    find(OPERATOR_ARGUMENTS, lambda args: expected_spec(args, "file:///x") is not REFUSED)
    find(LOGS_ARGUMENTS, lambda args: expected_query(args) is REFUSED)
    find(LOGS_ARGUMENTS, lambda args: expected_query(args) is not REFUSED)
