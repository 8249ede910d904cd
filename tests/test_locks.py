"""cache.lock(): owner-safe, blocking without spinning, auto-renewal, sync and async."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lexigram_cache_django.backends.base import LexigramCache
from lexigram_cache_django.locks import LockError, LockNotOwnedError
from tests.conftest import NETWORKED, backend_config
from tests.test_stampede import _spawn


def test_acquire_release_and_ownership(any_cache: LexigramCache) -> None:
    first = any_cache.lock("job", timeout=5)
    second = any_cache.lock("job", timeout=5)
    assert first.acquire(blocking=False)
    assert first.locked() and first.owned()
    assert not second.acquire(blocking=False)
    assert second.locked() and not second.owned()
    first.release()
    assert not first.locked()
    assert second.acquire(blocking=False)
    second.release()


def test_context_manager_and_lock_names_do_not_clash_with_data(any_cache: LexigramCache) -> None:
    any_cache.set("job", "data")
    with any_cache.lock("job", timeout=5) as held:
        assert held.owned()
        assert any_cache.get("job") == "data"
    assert not held.locked()


def test_release_of_an_expired_lock_taken_by_another_owner_raises(
    any_cache: LexigramCache,
) -> None:
    first = any_cache.lock("job", timeout=1)
    assert first.acquire()
    time.sleep(2.3)  # expired (memcached rounds lock lifetimes up to whole seconds)
    second = any_cache.lock("job", timeout=5)
    assert second.acquire(blocking=False)
    with pytest.raises(LockNotOwnedError):
        first.release()  # must not delete the second owner's lock
    assert second.owned()
    with pytest.raises(LockNotOwnedError):
        first.token = "stale"
        first.extend(5)
    second.release()


def test_release_without_holding_raises(any_cache: LexigramCache) -> None:
    with pytest.raises(LockError, match="not held"):
        any_cache.lock("job").release()


def test_blocking_timeout_gives_up_and_counts(any_cache: LexigramCache) -> None:
    holder = any_cache.lock("job", timeout=10)
    assert holder.acquire()
    started = time.monotonic()
    waiter = any_cache.lock("job", timeout=10, blocking_timeout=0.3)
    assert not waiter.acquire()
    assert 0.25 < time.monotonic() - started < 3
    with pytest.raises(LockError, match="could not acquire"), waiter:
        pass
    assert any_cache.stats()["lock_timeouts"] >= 2
    holder.release()


def test_waiting_does_not_spin(any_cache: LexigramCache, monkeypatch: pytest.MonkeyPatch) -> None:
    holder = any_cache.lock("job", timeout=10)
    assert holder.acquire()
    attempts = 0
    original = type(any_cache).lock_add

    def counting(self: Any, *args: Any) -> bool | None:
        nonlocal attempts
        attempts += 1
        return original(self, *args)

    monkeypatch.setattr(type(any_cache), "lock_add", counting)
    assert not any_cache.lock("job", sleep=0.1, blocking_timeout=1.0).acquire()
    assert attempts < 25  # backoff capped at 0.1 s: ~15 tries a second, not thousands
    holder.release()


def test_threads_never_overlap_in_the_critical_section(any_cache: LexigramCache) -> None:
    inside = 0
    overlaps = 0
    entries = 0
    guard = threading.Lock()

    def work() -> None:
        nonlocal inside, overlaps, entries
        for _ in range(5):
            with any_cache.lock("section", timeout=5, sleep=0.01, blocking_timeout=30):
                with guard:
                    inside += 1
                    entries += 1
                    overlaps += inside > 1
                time.sleep(0.005)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (entries, overlaps) == (30, 0)


def test_auto_renewal_keeps_the_lock_past_its_timeout(any_cache: LexigramCache) -> None:
    renewed = any_cache.lock("long", timeout=1, auto_renewal=True)
    plain = any_cache.lock("short", timeout=1)
    assert renewed.acquire() and plain.acquire()
    time.sleep(2.5)
    assert renewed.owned()  # renewed every timeout/3
    assert not plain.locked()  # expired
    renewed.release()
    assert not renewed.locked()
    with pytest.raises(ValueError, match="auto_renewal needs a timeout"):
        any_cache.lock("x", auto_renewal=True)


async def test_async_lock(any_cache: LexigramCache) -> None:
    order: list[str] = []

    async def worker(name: str) -> None:
        async with any_cache.lock("alock", timeout=5, sleep=0.01):
            order.append(f"{name}-in")
            await asyncio.sleep(0.02)
            order.append(f"{name}-out")

    await asyncio.gather(*(worker(str(i)) for i in range(5)))
    assert len(order) == 10
    for i in range(0, 10, 2):  # strictly in/out pairs: no interleaving
        assert order[i].endswith("-in") and order[i + 1] == order[i].replace("-in", "-out")
    lock = any_cache.lock("alock", timeout=1, auto_renewal=True)
    assert await lock.aacquire()
    await asyncio.sleep(2.0)
    assert await lock.aowned()
    await lock.arelease()
    assert not await lock.alocked()


@pytest.mark.parametrize("backend_kind", NETWORKED, indirect=True)
def test_two_processes_never_overlap(
    backend_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    config = backend_config(backend_kind, request)
    log = tmp_path / "log"
    args = {"name": "shared", "log": str(log), "start_at": time.time() + 2.0, "rounds": 6}
    procs = [_spawn("lock", config, args) for _ in range(2)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    spans = sorted(
        (float(began), float(ended))
        for _pid, began, ended in (line.split() for line in log.read_text().splitlines())
    )
    assert len(spans) == 12
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end  # each holder's work ends before the next begins


@pytest.mark.parametrize("backend_kind", NETWORKED, indirect=True)
def test_a_process_holding_past_its_timeout_with_auto_renewal_keeps_the_lock(
    backend_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    config = backend_config(backend_kind, request)
    log = tmp_path / "log"
    holder = _spawn(
        "hold_lock", config, {"name": "renewed", "timeout": 1, "hold": 3.0, "log": str(log)}
    )
    from tests.conftest import build_backend

    cache = build_backend(config)
    deadline = time.monotonic() + 20
    while not (log.exists() and "acquired" in log.read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    contender = cache.lock("renewed", timeout=5)
    for _ in range(5):  # 2.5 s: well past the 1 s timeout
        assert not contender.acquire(blocking=False)
        time.sleep(0.5)
    assert holder.wait(timeout=30) == 0
    assert log.read_text().split() == ["acquired", "releasing", "released"]
    assert contender.acquire(blocking=False)
    contender.release()
