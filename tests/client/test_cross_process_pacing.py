"""Processes that share nothing but the org's budget converge on it, at the org's real ~50/min too.

Each process has its own :class:`RateLimiter` set to the org's whole budget; the org's bucket is the
fake server's :class:`TokenBucket` (3 requests saved, as in ``tests/faults/test_shared_rate_budget.py``).
Time is simulated, so an hour of the real rate runs in well under a second and every figure is the
same on every run. A process does what :class:`AsyncAuditLogsClient` does with each answer: a 200
calls ``succeeded()``; a 429 calls ``rate_limited()``, pauses the limiter for the ``Retry-After`` the
server sent and sleeps it (the retry handler), then asks for a slot again. The real client, two real
processes and the real server are the fault test's; this one judges the pacing over hours, which a
test cannot wait for.

Before the climb was counted in slots (it was 1% of the rate per second), an hour at 50/min answered
7% of two processes' requests with 429, and 13% of three's.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

import pytest

from airflow_provider_slack_audit.client import RateLimiter
from airflow_provider_slack_audit.testing.bucket import TokenBucket

ORG_BURST = 3
LATENCY = 0.004  # a round trip, half each way
HOUR = 3600.0


@dataclass
class Pacing:
    granted: list[int]  # per process
    refused: int
    span: float  # from the first request's arrival to the last's

    @property
    def requests(self) -> int:
        return sum(self.granted) + self.refused

    def used(self, requests_per_minute: float) -> float:
        """The share of the org's budget over the span that was granted."""
        return sum(self.granted) / (requests_per_minute / 60 * self.span)


def simulate(requests_per_minute: float, processes: int, seconds: float, seed: int) -> Pacing:
    """``processes`` clients, each paced at the org's whole budget, requesting back to back."""
    now = 0.0

    def clock() -> float:
        return now

    rng = random.Random(seed)
    bucket = TokenBucket(requests_per_minute, ORG_BURST, clock)
    limiters = [
        RateLimiter(requests_per_minute, clock=clock, rng=random.Random(rng.random()))
        for _ in range(processes)
    ]
    granted, refused = [0] * processes, 0
    first = last = None
    # (time, tie-break, process, what happens): "ask" for a slot, or the request "arrives".
    events = [(rng.uniform(0, 0.5), k, k, "ask") for k in range(processes)]
    heapq.heapify(events)
    order = processes
    while events:
        at, _, k, what = heapq.heappop(events)
        if at > seconds:
            break
        now = at
        if what == "ask":
            following = (now + limiters[k].reserve() + LATENCY / 2, "arrives")
        else:
            retry_after = bucket.retry_after()
            if first is None:
                first = now
            last = now
            now += LATENCY / 2  # the answer is back
            if retry_after is not None:
                refused += 1
                limiters[k].rate_limited()
                limiters[k].pause(retry_after)
                following = (now + retry_after, "ask")
            else:
                granted[k] += 1
                limiters[k].succeeded()
                following = (now, "ask")
        order += 1
        heapq.heappush(events, (following[0], order, k, following[1]))
    assert first is not None and last is not None
    return Pacing(granted, refused, last - first)


@pytest.mark.parametrize(
    ("requests_per_minute", "processes"),
    [(50, 2), (50, 3), (240, 2), (240, 3)],
    ids=["50/min-2", "50/min-3", "240/min-2", "240/min-3"],
)
@pytest.mark.parametrize("seed", range(3))
def test_processes_at_the_orgs_whole_budget_converge_on_it_for_an_hour(
    requests_per_minute: int, processes: int, seed: int
) -> None:
    pacing = simulate(requests_per_minute, processes, HOUR, seed)

    refused = pacing.refused / pacing.requests
    assert refused <= 0.05, f"{pacing.refused} of {pacing.requests} requests were 429s"
    assert pacing.used(requests_per_minute) >= 0.8
    # No process starves another: each gets at least half of an equal share.
    assert min(pacing.granted) >= sum(pacing.granted) / processes / 2, pacing.granted


def test_the_share_of_429s_does_not_depend_on_the_budget() -> None:
    """The climb is counted in slots, so 50/min and 600/min see about the same share of 429s."""

    def share_of_429s(rate: int) -> float:
        # The same number of requests at each rate: 12 hours at 50/min, 1 hour at 600/min.
        runs = [simulate(rate, 2, 12 * HOUR * 50 / rate, seed) for seed in range(3)]
        return sum(run.refused / run.requests for run in runs) / len(runs)

    shares = {rate: share_of_429s(rate) for rate in (50, 600)}
    assert shares[50] == pytest.approx(shares[600], rel=0.2), shares
