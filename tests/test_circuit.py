"""The circuit breaker's state machine, on a fake clock, with real threads, and against a model."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lexigram_cache_django.circuit import (
    CircuitBreaker,
    CircuitEvent,
    CircuitState,
    ErrorInfo,
    FailureLog,
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(clock: FakeClock, events: list[CircuitEvent] | None = None, **kw: float) -> CircuitBreaker:
    listeners = [events.append] if events is not None else []
    return CircuitBreaker(
        "memcached 127.0.0.1:11211",
        clock=clock,
        wall_clock=clock,
        listeners=listeners,
        **kw,  # type: ignore[arg-type]
    )


def state(breaker: CircuitBreaker) -> CircuitState:
    """The state, through a call (so mypy does not narrow it across calls that change it)."""
    return breaker.state


def trip(breaker: CircuitBreaker, n: int | None = None) -> None:
    for _ in range(n if n is not None else breaker.failures_to_open):
        assert breaker.allow()
        breaker.failure(TimeoutError("timed out"))


def test_opens_after_n_consecutive_failures() -> None:
    clock = FakeClock()
    events: list[CircuitEvent] = []
    breaker = make(clock, events, failures=3)
    trip(breaker, 2)
    assert state(breaker) is CircuitState.CLOSED
    assert breaker.consecutive_failures == 2
    assert events == []
    trip(breaker, 1)
    assert state(breaker) is CircuitState.OPEN
    assert [e.kind for e in events] == ["opened"]
    opened = events[0]
    assert opened.server == "memcached 127.0.0.1:11211"
    assert opened.error == ErrorInfo("TimeoutError", "timed out")
    assert opened.failures == 3
    assert "opened" in opened.message() and "TimeoutError: timed out" in opened.message()


def test_success_in_closed_resets_the_count() -> None:
    breaker = make(FakeClock(), failures=3)
    trip(breaker, 2)
    breaker.success()
    assert breaker.consecutive_failures == 0
    trip(breaker, 2)
    assert state(breaker) is CircuitState.CLOSED


def test_open_short_circuits_and_counts() -> None:
    clock = FakeClock()
    breaker = make(clock, reset_timeout=5.0)
    trip(breaker)
    for _ in range(10):
        assert not breaker.allow()
        clock.advance(0.4)
    assert breaker.short_circuited == 10
    assert state(breaker) is CircuitState.OPEN
    snap = breaker.snapshot()
    assert snap.short_circuited == 10
    assert snap.opened_at == 1000.0
    assert snap.last_error == ErrorInfo("TimeoutError", "timed out")
    assert snap.times_opened == 1


def test_half_open_lets_one_trial_and_success_closes() -> None:
    clock = FakeClock()
    events: list[CircuitEvent] = []
    breaker = make(clock, events, reset_timeout=5.0)
    trip(breaker)
    clock.advance(5.0)
    assert breaker.allow()  # the trial
    assert state(breaker) is CircuitState.HALF_OPEN
    assert not breaker.allow()
    assert not breaker.allow()
    breaker.success()
    assert state(breaker) is CircuitState.CLOSED
    assert breaker.consecutive_failures == 0
    assert all(breaker.allow() for _ in range(3))
    assert [e.kind for e in events] == ["opened", "half_open", "closed"]
    closed = events[-1]
    assert closed.state is CircuitState.CLOSED
    assert closed.count == 2 and closed.seconds == pytest.approx(5.0)
    assert breaker.snapshot().opened_at is None


def test_trial_failure_reopens_for_another_reset_timeout() -> None:
    clock = FakeClock()
    events: list[CircuitEvent] = []
    breaker = make(clock, events, reset_timeout=5.0)
    trip(breaker)
    clock.advance(5.0)
    assert breaker.allow()
    breaker.failure(ConnectionRefusedError(111, "refused"))
    assert state(breaker) is CircuitState.OPEN
    clock.advance(4.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.allow()
    assert [e.kind for e in events] == ["opened", "half_open", "reopened", "half_open"]
    assert events[2].error is not None and events[2].error.type == "ConnectionRefusedError"
    assert breaker.snapshot().times_opened == 1  # one outage


def test_late_outcomes_of_calls_sent_before_opening_change_nothing() -> None:
    clock = FakeClock()
    breaker = make(clock, reset_timeout=5.0)
    trip(breaker)
    breaker.success()  # a straggler let through while closed
    breaker.failure(OSError("late"))
    assert state(breaker) is CircuitState.OPEN
    clock.advance(5.0)
    assert breaker.allow()


def test_lost_trial_is_replaced_after_trial_timeout_and_abandon_frees_it() -> None:
    clock = FakeClock()
    breaker = make(clock, reset_timeout=1.0, trial_timeout=10.0)
    trip(breaker)
    clock.advance(1.0)
    assert breaker.allow()
    clock.advance(9.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.allow()  # the first trial never reported
    breaker.abandon()  # ...and this one was cancelled
    assert breaker.allow()
    assert not breaker.allow()


def test_reset_closes_by_hand() -> None:
    breaker = make(FakeClock())
    trip(breaker)
    breaker.reset()
    assert state(breaker) is CircuitState.CLOSED and breaker.allow()


def test_summary_at_most_once_per_interval() -> None:
    clock = FakeClock()
    events: list[CircuitEvent] = []
    breaker = make(clock, events, reset_timeout=1000.0, summary_interval=60.0)
    trip(breaker)
    for _ in range(300):  # 150 s of short-circuited calls, 2 a second
        breaker.allow()
        clock.advance(0.5)
    summaries = [e for e in events if e.kind == "summary"]
    assert len(summaries) == 2
    assert summaries[0].count == 121 and summaries[0].seconds == pytest.approx(60.0)
    assert summaries[0].message().startswith("121 calls failed open in the last 60 s on memcached")


def test_failure_log_counts_and_flushes() -> None:
    log = FailureLog(10.0, now=0.0)
    assert log.add(1.0) is None
    assert log.add(5.0, n=3) is None
    assert log.pending == 4
    assert log.add(10.0) == (5, 10.0)
    assert log.pending == 0
    assert log.flush(12.0) is None


def test_error_info_masks_credentials_and_truncates() -> None:
    info = ErrorInfo.from_exception(OSError("cannot reach redis://user:s3cret@10.0.0.1:6379/0"))
    assert "s3cret" not in info.message and "redis://***@10.0.0.1" in info.message
    long = ErrorInfo.from_exception(ValueError("x" * 1000))
    assert len(long.message) == 200 and long.message.endswith("...")


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker("s", failures=0)
    with pytest.raises(ValueError):
        CircuitBreaker("s", reset_timeout=-1)


# -- real threads -------------------------------------------------------------------------


def _race_half_open() -> tuple[int, int]:
    """16 threads ask a breaker whose reset timeout just passed, at once: (allowed, counted)."""
    clock = FakeClock()
    breaker = make(clock, reset_timeout=1.0)
    trip(breaker)
    clock.advance(1.0)
    barrier = threading.Barrier(16)
    allowed: list[bool] = []

    def worker() -> None:
        barrier.wait()
        got = [breaker.allow() for _ in range(50)]
        allowed.extend(got)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return allowed.count(True), breaker.short_circuited


def test_half_open_lets_exactly_one_trial_through_racing_threads() -> None:
    for _attempt in range(20):
        assert _race_half_open() == (1, 16 * 50 - 1)


def test_sixteen_threads_failing_open_it_once_and_count_exactly() -> None:
    events: list[CircuitEvent] = []
    breaker = CircuitBreaker("s", failures=5, reset_timeout=3600.0, listeners=[events.append])
    barrier = threading.Barrier(16)
    refused = [0] * 16

    def worker(i: int) -> None:
        barrier.wait()
        for _ in range(2000):
            if breaker.allow():
                breaker.failure(OSError("down"))
            else:
                refused[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [e.kind for e in events] == ["opened"]
    assert breaker.short_circuited == sum(refused)
    assert 16 * 2000 - sum(refused) < 16 * 5  # at most the calls in flight when it opened


def test_sixteen_threads_mixed_outcomes_keep_it_consistent() -> None:
    breaker = CircuitBreaker("s", failures=3, reset_timeout=0.0)
    barrier = threading.Barrier(16)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        barrier.wait()
        try:
            for n in range(3000):
                if breaker.allow():
                    if (n + i) % 4 == 0:
                        breaker.failure(OSError("flaky"))
                    else:
                        breaker.success()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    breaker.reset()
    assert state(breaker) is CircuitState.CLOSED and breaker.allow()


# -- property: the breaker against a simple model ------------------------------------------


@dataclass
class Model:
    failures_to_open: int
    reset_timeout: float
    trial_timeout: float
    now: float = 0.0
    state: str = "closed"
    failures: int = 0
    opened_at: float = 0.0
    trial_at: float = 0.0
    short: int = 0

    def allow(self) -> bool:
        if self.state == "closed":
            return True
        if (self.state == "open" and self.now - self.opened_at >= self.reset_timeout) or (
            self.state == "half-open" and self.now - self.trial_at >= self.trial_timeout
        ):
            self.state, self.trial_at = "half-open", self.now
            return True
        self.short += 1
        return False

    def success(self) -> None:
        if self.state == "closed":
            self.failures = 0
        elif self.state == "half-open":
            self.state, self.failures = "closed", 0

    def failure(self) -> None:
        if self.state == "open":
            return
        self.failures += 1
        if self.state == "half-open" or self.failures >= self.failures_to_open:
            self.state, self.opened_at = "open", self.now


steps = st.lists(
    st.one_of(
        st.sampled_from(["allow", "success", "failure", "abandon"]),
        st.floats(min_value=0.0, max_value=3.0, allow_nan=False),
    ),
    max_size=80,
)


@settings(derandomize=True, database=None, max_examples=300, deadline=None)
@given(
    failures=st.integers(min_value=1, max_value=4),
    reset_timeout=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    script=steps,
)
def test_breaker_matches_model(failures: int, reset_timeout: float, script: list[object]) -> None:
    clock = FakeClock(0.0)
    trial_timeout = 4.0
    breaker = make(
        clock, failures=failures, reset_timeout=reset_timeout, trial_timeout=trial_timeout
    )
    model = Model(failures, reset_timeout, trial_timeout)
    for step in script:
        if isinstance(step, float):
            clock.advance(step)
            model.now += step
        elif step == "allow":
            assert breaker.allow() == model.allow()
        elif step == "success":
            breaker.success()
            model.success()
        elif step == "failure":
            breaker.failure(OSError("x"))
            model.failure()
        else:
            breaker.abandon()
            if model.state == "half-open":
                model.trial_at = model.now - trial_timeout
        assert breaker.state.value == model.state
        assert breaker.short_circuited == model.short
        if model.state == "closed":
            assert breaker.consecutive_failures == model.failures < failures


def test_guarded_calls_run_concurrently_no_lock_held_during_the_call() -> None:
    """pybreaker holds its lock during the call: 4 threads x 50 ms took 0.20 s there."""
    breaker = CircuitBreaker("s")

    def guarded() -> None:
        if breaker.allow():
            time.sleep(0.05)
            breaker.success()

    threads = [threading.Thread(target=guarded) for _ in range(4)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert time.perf_counter() - t0 < 0.15
