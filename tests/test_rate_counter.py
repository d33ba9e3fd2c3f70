"""The in-process fixed windows count as the limits library's own fixed-window counter does,
and a failing storage hands over to memory and back."""

import logging
import types

import pytest
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from ollama_openai import rate_counter
from ollama_openai.rate_counter import MemoryWindows, RateCounter, parsed_limits


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(
        rate_counter, "time", types.SimpleNamespace(time=clock.time, monotonic=clock.time)
    )
    return clock


def test_counts_as_the_limits_library_does():
    ours, theirs = MemoryWindows(), FixedWindowRateLimiter(MemoryStorage())
    (item,) = parsed_limits("3/minute")
    for who in ("a", "a", "b", "a", "a", "b"):
        assert ours.test(item, "requests", who) == theirs.test(item, "requests", who)
        assert ours.hit(item, "requests", who) == theirs.hit(item, "requests", who)
        mine, its = (c.get_window_stats(item, "requests", who) for c in (ours, theirs))
        assert mine.remaining == its.remaining
        assert abs(mine.reset_time - its.reset_time) < 1


def test_a_window_opens_at_its_first_request_and_ends_after_its_length(clock):
    windows = MemoryWindows()
    (item,) = parsed_limits("2/minute")
    assert windows.get_window_stats(item, "k").remaining == 2
    clock.now += 30  # nothing counted yet: the window has not opened
    assert [windows.hit(item, "k") for _ in range(3)] == [True, True, False]
    assert windows.get_window_stats(item, "k").reset_time == clock.now + 60
    assert not windows.test(item, "k")
    clock.now += 59.9
    assert not windows.hit(item, "k")
    clock.now += 0.2
    assert windows.hit(item, "k")
    assert windows.get_window_stats(item, "k").remaining == 1


def test_ended_windows_are_swept(clock):
    windows = MemoryWindows()
    (item,) = parsed_limits("5/second")
    for address in range(1000):
        windows.hit(item, str(address))
    clock.now += MemoryWindows.SWEEP_SECONDS + 1
    windows.hit(item, "last")
    assert len(windows._windows) == 1


def test_a_failing_storage_counts_in_memory_and_is_tried_again_later(clock, caplog):
    counter = RateCounter("redis://127.0.0.1:1/0")  # nothing listens on port 1
    (item,) = parsed_limits("2/minute")
    with caplog.at_level(logging.WARNING, logger="ollama_openai.rate_counter"):
        assert [counter.hit(item, "k") for _ in range(3)] == [True, True, False]
    assert [r.message for r in caplog.records].count(
        next(r.message for r in caplog.records if "unreachable" in r.message)
    ) == 1
    tried = []
    counter._storage = lambda: tried.append(1) or counter._in_memory()  # the storage is back
    counter.hit(item, "k")
    assert tried == []  # within the pause: memory, the storage not asked
    clock.now += rate_counter.FIRST_PAUSE + 0.1
    with caplog.at_level(logging.WARNING, logger="ollama_openai.rate_counter"):
        counter.hit(item, "k")
    assert tried == [1]
    assert "recovered" in caplog.records[-1].message
