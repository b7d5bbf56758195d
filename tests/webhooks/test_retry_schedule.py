"""The retry schedule: about three days, jittered, honouring Retry-After."""

from __future__ import annotations

import random

import pytest

from bankhub.webhooks.sender import RETRY_SCHEDULE, next_delay

DAY = 86_400


def test_schedule_spans_about_three_days() -> None:
    assert 2.5 * DAY <= sum(RETRY_SCHEDULE) <= 3.5 * DAY
    assert list(RETRY_SCHEDULE) == sorted(RETRY_SCHEDULE)


@pytest.mark.parametrize("attempt", range(1, len(RETRY_SCHEDULE) + 1))
def test_jitter_stays_within_twenty_percent(attempt: int) -> None:
    rng = random.Random(attempt)
    base = RETRY_SCHEDULE[attempt - 1]
    delays = [next_delay(attempt, retry_after=None, rng=rng) for _ in range(200)]
    assert all(d is not None and 0.8 * base <= d <= 1.2 * base for d in delays)
    assert len(set(delays)) > 1


def test_jittered_total_stays_in_range() -> None:
    rng = random.Random(7)
    total = sum(next_delay(n, retry_after=None, rng=rng) or 0 for n in range(1, 11))
    assert 2.5 * DAY * 0.8 <= total <= 3.5 * DAY


def test_retry_after_is_a_floor() -> None:
    rng = random.Random(1)
    assert next_delay(1, retry_after=600, rng=rng) == 600
    assert next_delay(1, retry_after=10 * DAY, rng=rng) == DAY
    late = next_delay(9, retry_after=5, rng=rng)
    assert late is not None
    assert late >= 0.8 * RETRY_SCHEDULE[8]


def test_schedule_exhausted() -> None:
    rng = random.Random(1)
    assert next_delay(len(RETRY_SCHEDULE), retry_after=None, rng=rng) is not None
    assert next_delay(len(RETRY_SCHEDULE) + 1, retry_after=None, rng=rng) is None
    assert next_delay(len(RETRY_SCHEDULE) + 1, retry_after=60, rng=rng) is None


def test_attempts_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        next_delay(0, retry_after=None, rng=random.Random(1))
