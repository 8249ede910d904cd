"""Stampede protection, XFetch early refresh and TTL jitter, on every backend."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lexigram_cache_django import stampede
from lexigram_cache_django.backends.base import LexigramCache
from lexigram_cache_django.codec import EntryMeta
from tests.conftest import NETWORKED, backend_config

ROOT = Path(__file__).resolve().parent.parent


class Counter:
    """A computation that takes a while and counts how often it ran."""

    def __init__(self, seconds: float = 0.2, value: Any = "computed") -> None:
        self.calls = 0
        self.seconds = seconds
        self.value = value
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            self.calls += 1
        time.sleep(self.seconds)
        return self.value

    async def acall(self) -> Any:
        self.calls += 1
        await asyncio.sleep(self.seconds)
        return self.value


def run_threads(n: int, target: Any) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# -- in one process ------------------------------------------------------------------------


def test_32_threads_on_a_cold_key_compute_once(any_cache: LexigramCache) -> None:
    compute = Counter()
    results = run_threads(32, lambda: any_cache.get_or_set("cold", compute, 60))
    assert compute.calls == 1
    assert results == ["computed"] * 32
    assert any_cache.get("cold") == "computed"
    stats = any_cache.stats()
    assert stats["computations"] == 1
    assert stats["waits"] == 31


async def test_200_tasks_on_a_cold_key_compute_once(any_cache: LexigramCache) -> None:
    compute = Counter(seconds=0.1)
    results = await asyncio.gather(
        *(any_cache.aget_or_set("cold", compute.acall, 60) for _ in range(200))
    )
    assert compute.calls == 1
    assert results == ["computed"] * 200
    assert await any_cache.aget("cold") == "computed"


async def test_aget_or_set_accepts_sync_callables_and_values(any_cache: LexigramCache) -> None:
    compute = Counter(seconds=0.05)
    results = await asyncio.gather(*(any_cache.aget_or_set("k", compute, 60) for _ in range(50)))
    assert compute.calls == 1
    assert set(results) == {"computed"}
    assert await any_cache.aget_or_set("plain", 42) == 42
    assert await any_cache.aget("plain") == 42


def test_a_raising_computation_reaches_every_caller_and_caches_nothing(
    any_cache: LexigramCache,
) -> None:
    calls = 0

    def boom() -> str:
        nonlocal calls
        calls += 1
        time.sleep(0.2)
        raise RuntimeError("backend of record is down")

    results = run_threads(16, lambda: any_cache.get_or_set("k", boom, 60))
    assert calls == 1
    assert all(isinstance(r, RuntimeError) for r in results)
    assert any_cache.get("k", "missing") == "missing"
    assert any_cache.get_or_set("k", lambda: "second try", 60) == "second try"


async def test_a_raising_async_computation_reaches_every_task(any_cache: LexigramCache) -> None:
    calls = 0

    async def boom() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        raise RuntimeError("nope")

    results = await asyncio.gather(
        *(any_cache.aget_or_set("k", boom, 60) for _ in range(20)), return_exceptions=True
    )
    assert calls == 1
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await any_cache.aget("k", "missing") == "missing"
    assert await any_cache.aget_or_set("k", lambda: "again", 60) == "again"


async def test_a_cancelled_waiter_does_not_cancel_the_others(any_cache: LexigramCache) -> None:
    compute = Counter(seconds=0.2)
    first = asyncio.ensure_future(any_cache.aget_or_set("k", compute.acall, 60))
    others = [
        asyncio.ensure_future(any_cache.aget_or_set("k", compute.acall, 60)) for _ in range(5)
    ]
    await asyncio.sleep(0.05)
    first.cancel()  # the task that started the computation goes away
    others[0].cancel()
    done = await asyncio.gather(*others[1:])
    assert done == ["computed"] * 4
    assert compute.calls == 1
    assert first.cancelled() and others[0].cancelled()
    assert await any_cache.aget("k") == "computed"


def test_waiters_give_up_after_wait_timeout_and_compute_themselves(
    any_cache: LexigramCache,
) -> None:
    slow = Counter(seconds=1.0, value="slow")
    fast = Counter(seconds=0.0, value="fast")
    leader = threading.Thread(target=lambda: any_cache.get_or_set("k", slow, 60))
    leader.start()
    time.sleep(0.1)
    assert any_cache.get_or_set("k", fast, 60, wait_timeout=0.2) == "fast"
    leader.join()
    assert (slow.calls, fast.calls) == (1, 1)
    assert any_cache.stats()["lock_timeouts"] >= 1


def test_no_state_is_left_behind_per_key(any_cache: LexigramCache) -> None:
    for i in range(50):
        any_cache.get_or_set(f"k{i}", lambda: "v", 60)
    assert not [k for k in stampede._flights if k.startswith(any_cache.identity)]


def test_plain_values_and_none_follow_djangos_semantics(any_cache: LexigramCache) -> None:
    assert any_cache.get_or_set("answer", 42) == 42
    assert any_cache.get("answer") == 42
    assert any_cache.get_or_set("null", None) is None
    assert any_cache.get("null", "default") is None  # None is stored, as in Django
    assert any_cache.get_or_set("zero", "v", timeout=0) == "v"
    assert any_cache.get("zero") is None


# -- across processes ------------------------------------------------------------------


def _spawn(job: str, config: dict[str, Any], args: dict[str, Any]) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.workers", job, json.dumps(config), json.dumps(args)],
        cwd=ROOT,
        env=env,
    )


@pytest.mark.parametrize("backend_kind", NETWORKED, indirect=True)
def test_4_processes_x_8_threads_compute_once(
    backend_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    config = backend_config(backend_kind, request)
    log = tmp_path / "log"
    args = {"key": "cold", "log": str(log), "start_at": time.time() + 2.0, "threads": 8}
    procs = [_spawn("stampede", config, args) for _ in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    lines = log.read_text().splitlines()
    assert len([line for line in lines if line.startswith("compute")]) == 1
    results = [json.loads(line[len("results ") :]) for line in lines if line.startswith("results")]
    assert results == [["value"] * 8] * 4


@pytest.mark.parametrize("backend_kind", NETWORKED, indirect=True)
def test_a_killed_winner_process_is_recovered_after_the_lock_timeout(
    backend_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    config = backend_config(backend_kind, request)
    log = tmp_path / "log"
    common = {"key": "cold", "log": str(log), "lock_timeout": 1.5, "wait_timeout": 20}
    winner = _spawn("stampede", config, {**common, "crash": True, "start_at": 0, "threads": 1})
    assert winner.wait(timeout=30) == 17  # died inside compute, holding the lock
    started = time.monotonic()
    survivors = [
        _spawn("stampede", config, {**common, "start_at": 0, "threads": 4}) for _ in range(2)
    ]
    assert [p.wait(timeout=60) for p in survivors] == [0, 0]
    assert time.monotonic() - started < 15  # recovered well before wait_timeout
    lines = log.read_text().splitlines()
    assert len([line for line in lines if line.startswith("compute")]) == 2  # crash + 1
    results = [json.loads(line[len("results ") :]) for line in lines if line.startswith("results")]
    assert results == [["value"] * 4] * 2


def test_a_dead_holder_in_process_is_recovered_after_the_lock_timeout(
    any_cache: LexigramCache,
) -> None:
    key = any_cache.make_and_validate_key("cold")
    lock_key = stampede.aux_key(key, "lexigram-lock")
    assert any_cache.lock_add(lock_key, "crashed-owner", 0.5)  # never released
    compute = Counter(seconds=0.0)
    started = time.monotonic()
    assert any_cache.get_or_set("cold", compute, 60, wait_timeout=30) == "computed"
    assert 0.3 < time.monotonic() - started < 10
    assert compute.calls == 1


# -- XFetch early refresh ----------------------------------------------------------------------


def _seed_entry(cache: LexigramCache, key: str, value: Any, delta: float, ttl: float) -> None:
    made = cache.make_and_validate_key(key)
    cache.set_entry(made, value, ttl, EntryMeta(delta=delta, expires=time.time() + ttl))


def test_xfetch_probability_rises_towards_expiry() -> None:
    now = 1_000_000.0
    far = EntryMeta(delta=0.1, expires=now + 60)
    near = EntryMeta(delta=0.1, expires=now + 0.05)
    trials = 2000
    far_hits = sum(stampede.should_refresh_early(far, 1.0, now) for _ in range(trials))
    near_hits = sum(stampede.should_refresh_early(near, 1.0, now) for _ in range(trials))
    assert far_hits == 0  # exp(-600): never in practice
    assert 0.5 * trials < near_hits < 0.7 * trials  # P = exp(-0.5) ~ 0.61
    assert not stampede.should_refresh_early(near, 0.0, now)  # beta 0 disables
    assert not stampede.should_refresh_early(EntryMeta(delta=0.1, expires=0.0), 1.0, now)


def test_one_caller_refreshes_early_while_the_others_keep_the_current_value(
    any_cache: LexigramCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed_entry(any_cache, "hot", "old", delta=100.0, ttl=30)  # big delta: refresh is due
    monkeypatch.setattr(random, "random", lambda: 0.5)
    refresh = Counter(seconds=0.3, value="new")
    results = run_threads(16, lambda: any_cache.get_or_set("hot", refresh, 60))
    assert refresh.calls == 1
    assert results.count("new") == 1
    assert results.count("old") == 15
    assert any_cache.get("hot") == "new"
    assert any_cache.stats()["early_refreshes"] == 1


def test_early_refresh_off_per_call_and_by_beta(any_cache: LexigramCache) -> None:
    _seed_entry(any_cache, "hot", "old", delta=1000.0, ttl=30)
    assert any_cache.get_or_set("hot", lambda: "new", 60, early_refresh=False) == "old"
    assert any_cache.get_or_set("hot", lambda: "new", 60, beta=0) == "old"


def test_a_failing_early_refresh_keeps_the_current_value(any_cache: LexigramCache) -> None:
    _seed_entry(any_cache, "hot", "old", delta=1000.0, ttl=30)

    def boom() -> str:
        raise RuntimeError("upstream down")

    assert any_cache.get_or_set("hot", boom, 60) == "old"
    assert any_cache.get("hot") == "old"


async def test_async_early_refresh(any_cache: LexigramCache) -> None:
    _seed_entry(any_cache, "hot", "old", delta=1000.0, ttl=30)
    refresh = Counter(seconds=0.1, value="new")
    results = await asyncio.gather(
        *(any_cache.aget_or_set("hot", refresh.acall, 60) for _ in range(20))
    )
    assert refresh.calls == 1
    assert results.count("new") == 1
    assert await any_cache.aget("hot") == "new"


def test_entries_written_by_get_or_set_carry_compute_time_and_expiry(
    any_cache: LexigramCache,
) -> None:
    before = time.time()
    any_cache.get_or_set("k", Counter(seconds=0.1), 60)
    entry = any_cache.get_entry(any_cache.make_and_validate_key("k"))
    assert entry is not None
    value, meta = entry
    assert value == "computed"
    assert meta is not None
    assert meta.delta >= 0.1
    assert before + 59 < meta.expires < time.time() + 61


# -- TTL jitter --------------------------------------------------------------------------------


def test_ttl_jitter_spreads_expiries(make_cache: Any) -> None:
    cache = make_cache(TTL_JITTER=0.2)
    expiries = []
    for i in range(40):
        cache.get_or_set(f"k{i}", lambda: "v", 100)
        entry = cache.get_entry(cache.make_and_validate_key(f"k{i}"))
        expiries.append(entry[1].expires - time.time())
    assert min(expiries) >= 79 and max(expiries) <= 121
    assert max(expiries) - min(expiries) > 10  # actually spread, not all at 100


def test_jitter_leaves_no_expiry_and_zero_jitter_alone() -> None:
    assert stampede.jittered(None, 0.5) is None
    assert stampede.jittered(100, 0.0) == 100
    assert stampede.jittered(0, 0.5) == 0
    assert {50 <= stampede.jittered(100, 0.5) <= 150 for _ in range(100)} == {True}  # type: ignore[operator]


@pytest.mark.parametrize("backend_kind", NETWORKED, indirect=True)
def test_a_dead_server_computes_at_once_instead_of_waiting(
    backend_kind: str, request: pytest.FixtureRequest
) -> None:
    from tests.conftest import build_backend
    from tests.servers import free_port

    config = backend_config(backend_kind, request)
    config["LOCATION"] = (
        f"redis://127.0.0.1:{free_port()}"
        if backend_kind == "redis"
        else f"127.0.0.1:{free_port()}"
    )
    cache = build_backend(config)  # nothing listens there: every call fails open
    compute = Counter(seconds=0.0)
    assert cache.get_or_set("k", compute, 60, wait_timeout=30) == "computed"
    stats = cache.stats()
    assert compute.calls == 1
    assert stats["errors"] >= 1
    assert stats["lock_timeouts"] == 0  # did not poll a dead server until wait_timeout
