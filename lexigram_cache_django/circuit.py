"""A small circuit breaker per cache server: a pure state machine the client's choke point asks.

Why our own (pybreaker 1.4.1 was measured, see ``docs/design.md``): ``breaker.call(fn)`` costs
~1.2 us a call, runs the guarded call while holding its lock (threads calling one server queue
behind each other) and returns an ``async def`` unawaited without ever tripping. A cache needs
the opposite: the healthy path must cost almost nothing, calls must run concurrently, and the
same breaker must serve threads and every event loop of the process.

So the breaker never runs the call. The choke point asks and reports::

    if not breaker.allow():          # False while open: no socket touched
        return fail_open_default      # counted as short-circuited by the breaker
    try:
        result = send_command()
    except SERVER_ERRORS as exc:     # connection errors and timeouts, not NOT_FOUND
        breaker.failure(exc)
        raise
    except BaseException:             # cancelled: no outcome
        breaker.abandon()
        raise
    breaker.success()

States: **closed** (calls pass) -> **open** after ``failures`` consecutive failures (calls are
short-circuited) -> **half-open** once ``reset_timeout`` seconds have passed: exactly one caller
gets ``allow() == True`` (the trial), the others are still short-circuited; the trial's
success closes the breaker, its failure re-opens it for another ``reset_timeout``. A trial
that never reports (a lost task) is replaced after ``trial_timeout``.

Cost: on the closed path ``allow()`` reads one attribute and ``success()`` one more; no lock is
taken. The lock is taken on failures, on state transitions and on short-circuited calls (to
count them exactly); listeners run after the lock is released.

Quiet logs: listeners get a :class:`CircuitEvent` when the breaker opens, goes half-open,
re-opens, closes, and at most once per ``summary_interval`` while open a ``summary`` event
("N calls failed open in the last 60 s on <server>"), counted by a :class:`FailureLog` whose
per-call cost is an increment and a comparison.
"""

from __future__ import annotations

import enum
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_FAILURES",
    "DEFAULT_RESET_TIMEOUT",
    "DEFAULT_SUMMARY_INTERVAL",
    "DEFAULT_TRIAL_TIMEOUT",
    "CircuitBreaker",
    "CircuitEvent",
    "CircuitSnapshot",
    "CircuitState",
    "ErrorInfo",
    "FailureLog",
]

#: Consecutive failures that open the breaker: a few, so one dropped packet does not trip it,
#: while a frozen server costs at most this many timeouts before calls become microseconds.
DEFAULT_FAILURES = 5
#: Seconds open before one trial call probes the server. 1 s: a restarted server is used again
#: within ~1 s (issue 12 asks for the first hit within 2 s of a restart), and a frozen one
#: costs at most one request per second per process a timeout (a refused one: ~0.1 ms).
DEFAULT_RESET_TIMEOUT = 1.0
#: Seconds after which a trial that never reported is presumed lost and another is allowed.
#: Keep it above the longest a call can take (the socket timeout).
DEFAULT_TRIAL_TIMEOUT = 10.0
#: At most one summary event per this many seconds while open.
DEFAULT_SUMMARY_INTERVAL = 60.0
#: Longest error message kept (messages can quote replies or keys).
MAX_ERROR_MESSAGE = 200

_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]*@", re.IGNORECASE)


class CircuitState(enum.Enum):
    """Where a breaker is; ``.value`` is the name shown in ``health()``."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """The type and (shortened, credential-masked) message of the last failure."""

    type: str
    message: str

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        message = _CREDENTIALS.sub(r"\g<scheme>***@", str(exc))
        if len(message) > MAX_ERROR_MESSAGE:
            message = message[: MAX_ERROR_MESSAGE - 3] + "..."
        return cls(type(exc).__name__, message)

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


@dataclass(frozen=True, slots=True)
class CircuitEvent:
    """A state change (or a summary) for listeners; ``message()`` is the log line.

    ``kind`` is ``"opened"`` (from closed), ``"half_open"`` (a trial is let through),
    ``"reopened"`` (the trial failed), ``"closed"`` or ``"summary"``. ``count`` is the number
    of short-circuited calls: in the window for a summary, over the whole outage for
    ``closed``; ``seconds`` is the window's length, or how long the breaker was not closed.
    """

    kind: str
    server: str
    state: CircuitState
    error: ErrorInfo | None
    failures: int
    count: int = 0
    seconds: float = 0.0

    def message(self) -> str:
        err = f" ({self.error})" if self.error else ""
        if self.kind == "opened":
            return f"circuit opened for {self.server} after {self.failures} failures{err}"
        if self.kind == "reopened":
            return f"circuit re-opened for {self.server}: the trial call failed{err}"
        if self.kind == "half_open":
            return f"circuit half-open for {self.server}: one trial call let through"
        if self.kind == "closed":
            return (
                f"circuit closed for {self.server} after {self.seconds:.1f} s; "
                f"{self.count} calls failed open meanwhile"
            )
        return (
            f"{self.count} calls failed open in the last {self.seconds:.0f} s on {self.server}{err}"
        )


@dataclass(frozen=True, slots=True)
class CircuitSnapshot:
    """What ``health()`` shows about one server's breaker (a consistent copy)."""

    server: str
    state: CircuitState
    consecutive_failures: int
    opened_at: float | None  #: wall-clock time (``time.time()``) it left closed, if not closed
    last_error: ErrorInfo | None
    short_circuited: int  #: calls short-circuited since the breaker was created
    times_opened: int


class FailureLog:
    """Counts events and says when a summary line is due, at most once per ``interval``.

    ``add(now)`` costs an increment and a comparison; it returns ``(count, seconds)`` when the
    window is over (and starts the next one). Not locked: the breaker calls it under its lock;
    a caller sharing one between threads must lock it too.
    """

    __slots__ = ("_count", "_since", "interval")

    def __init__(self, interval: float = DEFAULT_SUMMARY_INTERVAL, now: float = 0.0) -> None:
        self.interval = interval
        self._count = 0
        self._since = now

    @property
    def pending(self) -> int:
        """Events counted in the current window."""
        return self._count

    def start(self, now: float) -> None:
        """Begin a new, empty window at ``now``."""
        self._count = 0
        self._since = now

    def add(self, now: float, n: int = 1) -> tuple[int, float] | None:
        self._count += n
        if now - self._since < self.interval:
            return None
        return self.flush(now)

    def flush(self, now: float) -> tuple[int, float] | None:
        """End the window now: ``(count, seconds)`` if it counted anything."""
        count, seconds = self._count, now - self._since
        self.start(now)
        return (count, seconds) if count else None


Listener = Callable[[CircuitEvent], object]

# Module constants: a global lookup is cheaper than an Enum attribute on the open path.
_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN


class CircuitBreaker:
    """One server's breaker, shared by every thread and event loop of the process.

    See the module docstring for the protocol. ``failures`` consecutive :meth:`failure` calls
    open it; :meth:`allow` then returns False (and counts the call) until ``reset_timeout``
    seconds have passed, when exactly one caller gets True. ``clock`` must be monotonic
    (injected for tests); listeners are called outside the lock and must not raise (an
    exception from one propagates to the reporting caller).
    """

    __slots__ = (
        "_clean",
        "_closed",
        "_failures",
        "_last_error",
        "_listeners",
        "_lock",
        "_opened_at",
        "_opened_wall",
        "_outage_short",
        "_outage_start",
        "_short",
        "_state",
        "_summary",
        "_times_opened",
        "_trial_at",
        "clock",
        "failures_to_open",
        "reset_timeout",
        "server",
        "trial_timeout",
        "wall_clock",
    )

    def __init__(
        self,
        server: str,
        *,
        failures: int = DEFAULT_FAILURES,
        reset_timeout: float = DEFAULT_RESET_TIMEOUT,
        trial_timeout: float = DEFAULT_TRIAL_TIMEOUT,
        summary_interval: float = DEFAULT_SUMMARY_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        listeners: Sequence[Listener] = (),
    ) -> None:
        if failures < 1:
            raise ValueError(f"failures must be >= 1, not {failures!r}")
        if reset_timeout < 0 or trial_timeout <= 0 or summary_interval <= 0:
            raise ValueError("reset_timeout must be >= 0; trial and summary intervals > 0")
        self.server = server
        self.failures_to_open = failures
        self.reset_timeout = reset_timeout
        self.trial_timeout = trial_timeout
        self.clock = clock
        self.wall_clock = wall_clock
        self._listeners: list[Listener] = list(listeners)
        self._lock = threading.Lock()
        self._summary = FailureLog(summary_interval, clock())
        # Hot-path flags, written under the lock: closed, and closed with no failure counted.
        self._closed = True
        self._clean = True
        self._state = _CLOSED
        self._failures = 0
        self._last_error: ErrorInfo | None = None
        self._opened_at = 0.0  # clock() when it last opened (or re-opened)
        self._opened_wall: float | None = None  # wall clock when it left the closed state
        self._outage_start = 0.0  # clock() when it left the closed state
        self._trial_at = 0.0  # clock() when the current trial was let through
        self._short = 0
        self._outage_short = 0
        self._times_opened = 0

    # -- the protocol -----------------------------------------------------------------------

    def after_fork(self) -> None:
        """In a forked child: a new lock (the old one may be held by a thread the child
        does not have); the state is kept."""
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """Whether to send this call; False (counted as short-circuited) while open."""
        if self._closed:
            return True
        return self._allow_slow()

    def success(self) -> None:
        """The call succeeded: reset the failure count, close a half-open breaker."""
        if self._clean:
            return
        self._success_slow()

    def failure(self, exc: BaseException | None = None) -> None:
        """The call failed as a server failure (connection error, timeout)."""
        event: CircuitEvent | None = None
        with self._lock:
            if exc is not None:
                self._last_error = ErrorInfo.from_exception(exc)
            state = self._state
            if state is _CLOSED:
                self._failures += 1
                self._clean = False
                if self._failures >= self.failures_to_open:
                    event = self._open("opened")
            elif state is _HALF_OPEN:
                self._failures += 1
                event = self._open("reopened")
            # OPEN: a call let through before it opened; it changes nothing.
        if event is not None:
            self._emit(event)

    def trip(self, exc: BaseException | None = None) -> None:
        """Open now, whatever the count: the call timed out (a stalled server), and one
        full timeout per caller is already what the breaker exists to avoid."""
        event: CircuitEvent | None = None
        with self._lock:
            if exc is not None:
                self._last_error = ErrorInfo.from_exception(exc)
            self._failures += 1
            self._clean = False
            if self._state is _CLOSED:
                event = self._open("opened")
            elif self._state is _HALF_OPEN:
                event = self._open("reopened")
        if event is not None:
            self._emit(event)

    def abandon(self) -> None:
        """The call ended with no outcome (cancelled): if it was the trial, allow another."""
        if self._closed:
            return
        with self._lock:
            if self._state is _HALF_OPEN:
                self._trial_at = self.clock() - self.trial_timeout

    # -- slow paths -------------------------------------------------------------------------

    def _allow_slow(self) -> bool:
        now = self.clock()
        event: CircuitEvent | None = None
        with self._lock:
            state = self._state
            if state is _CLOSED:  # closed meanwhile
                return True
            if (
                now - self._opened_at < self.reset_timeout
                if state is _OPEN
                else now - self._trial_at < self.trial_timeout
            ):
                # Short-circuited: the common call while a server is down, kept lean.
                self._short += 1
                self._outage_short += 1
                summary = self._summary
                summary._count += 1
                if now - summary._since < summary.interval:
                    return False
                due = summary.flush(now)
                if due is None:
                    return False
                event = self._event("summary", *due)
                allowed = False
            else:  # the trial: open long enough, or the last trial is presumed lost
                self._state = _HALF_OPEN
                self._trial_at = now
                if state is _OPEN:
                    event = self._event("half_open")
                allowed = True
        if event is not None:
            self._emit(event)
        return allowed

    def _success_slow(self) -> None:
        event: CircuitEvent | None = None
        with self._lock:
            state = self._state
            if state is _CLOSED:
                self._failures = 0
                self._clean = True
            elif state is _HALF_OPEN:
                event = self._close()
            # OPEN: a call let through before it opened; wait for the trial.
        if event is not None:
            self._emit(event)

    def _open(self, kind: str) -> CircuitEvent:
        """Under the lock: move to open (from closed or half-open)."""
        now = self.clock()
        if self._state is _CLOSED:
            self._opened_wall = self.wall_clock()
            self._outage_start = now
            self._times_opened += 1
            self._outage_short = 0
            self._summary.start(now)
        self._state = _OPEN
        self._closed = self._clean = False
        self._opened_at = now
        return self._event(kind)

    def _close(self) -> CircuitEvent:
        """Under the lock: move to closed; the event sums up the outage."""
        now = self.clock()
        count, seconds = self._outage_short, max(now - self._outage_start, 0.0)
        self._state = _CLOSED
        self._failures = 0
        self._opened_wall = None
        self._outage_short = 0
        self._summary.start(now)
        self._closed = self._clean = True
        return self._event("closed", count, seconds)

    def _event(self, kind: str, count: int = 0, seconds: float = 0.0) -> CircuitEvent:
        return CircuitEvent(
            kind, self.server, self._state, self._last_error, self._failures, count, seconds
        )

    def _emit(self, event: CircuitEvent) -> None:
        for listener in self._listeners:
            listener(event)

    # -- for operators and health() ---------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` on every state change and summary."""
        with self._lock:
            self._listeners = [*self._listeners, listener]

    def reset(self) -> None:
        """Close the breaker by hand (an operator knows the server is back)."""
        event: CircuitEvent | None = None
        with self._lock:
            if self._state is _CLOSED:
                self._failures = 0
                self._clean = True
            else:
                event = self._close()
        if event is not None:
            self._emit(event)

    @property
    def state(self) -> CircuitState:
        """The state as last recorded (open stays open until a caller asks after the wait)."""
        return self._state

    @property
    def short_circuited(self) -> int:
        return self._short

    @property
    def times_opened(self) -> int:
        return self._times_opened

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def last_error(self) -> ErrorInfo | None:
        return self._last_error

    def snapshot(self) -> CircuitSnapshot:
        with self._lock:
            return CircuitSnapshot(
                server=self.server,
                state=self._state,
                consecutive_failures=self._failures,
                opened_at=self._opened_wall,
                last_error=self._last_error,
                short_circuited=self._short,
                times_opened=self._times_opened,
            )

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.server} {self._state.value} failures={self._failures}>"
