"""Warmers run in process, the beat schedule, the cache warm command, re-warm, settings."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.beat import PersistentScheduler
from django.core.cache import caches
from django.core.management import call_command
from pytest_django.fixtures import Settings

from lexigram_cache_django import warming
from lexigram_cache_django.decorators import cached
from lexigram_cache_django.invalidation import invalidate_now

computed: list[int] = []


@cached(timeout=60, key="square:{n}")
def square(n: int) -> int:
    computed.append(n)
    return n * n


@pytest.fixture(autouse=True)
def _own_registry() -> Iterator[None]:
    """Each test sees only the warmers it registers (the example's come back after)."""
    saved = dict(warming._registry)
    warming._registry.clear()
    computed.clear()
    yield
    warming._registry.clear()
    warming._registry.update(saved)


def test_pairs_mapping_and_generators_are_written_with_tags() -> None:
    @warming.warmer("pairs", tags=["colours"], timeout=30)
    def pairs() -> Iterator[tuple[str, Any]]:
        yield "red", 1
        yield "blue", lambda: 2  # computed by the warmer's threads

    @warming.warmer("mapping")
    def mapping() -> dict[str, int]:
        return {"one": 1, "two": 2}

    seen: list[tuple[int, int]] = []
    report = warming.run("pairs", progress=lambda done, total: seen.append((done, total)))
    assert (report.total, report.written, report.skipped, report.failed) == (2, 2, 0, 0)
    assert report.ok and report.seconds >= 0 and seen[-1] == (2, 2)
    cache = caches["default"]
    assert cache.get("red") == 1 and cache.get("blue") == 2
    invalidate_now("colours")
    assert cache.get("red") is None  # written with the warmer's tags
    assert warming.run("mapping").written == 2 and cache.get("two") == 2
    assert set(warming.registry()) == {"pairs", "mapping"}


def test_skip_existing_computes_nothing_for_cached_keys() -> None:
    computed_values: list[str] = []

    def value(name: str) -> Any:
        def compute() -> str:
            computed_values.append(name)
            return name

        return compute

    @warming.warmer("skip", skip_existing=True)
    def items() -> dict[str, Any]:
        return {"a": value("a"), "b": value("b")}

    caches["default"].set("a", "already")
    report = warming.run("skip")
    assert (report.written, report.skipped) == (1, 1)
    assert computed_values == ["b"] and caches["default"].get("a") == "already"


def test_a_cached_function_is_warmed_for_a_list_of_arguments() -> None:
    @warming.warmer("squares", cached=square, concurrency=3)
    def args() -> list[Any]:
        return [(1,), {"n": 2}, 3]

    report = warming.run("squares")
    assert report.written == 3 and sorted(computed) == [1, 2, 3]
    computed.clear()
    assert [square(1), square(2), square(3)] == [1, 4, 9]
    assert computed == []  # hits


def test_failures_are_counted_not_raised() -> None:
    def boom() -> int:
        raise RuntimeError("no value")

    @warming.warmer("half")
    def half() -> dict[str, Any]:
        return {"ok": 1, "bad": boom}

    @warming.warmer("broken")
    def broken() -> list[Any]:
        raise RuntimeError("no items")

    report = warming.run("half")
    assert (report.written, report.failed) == (1, 1) and "no value" in report.errors[0]
    report = warming.run("broken")
    assert report.failed == 1 and not report.ok
    with pytest.raises(warming.UnknownWarmer, match="nope"):
        warming.run("nope")


def test_concurrency_bounds_the_items_in_flight() -> None:
    import threading

    active, peak = [0], [0]
    lock = threading.Lock()

    def slow() -> int:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1
        return 1

    @warming.warmer("bounded", concurrency=3)
    def items() -> dict[str, Any]:
        return {f"k{i}": slow for i in range(12)}

    assert warming.run("bounded").written == 12
    assert peak[0] == 3


def test_beat_schedule_entries_are_accepted_by_celery_beat(tmp_path: Path) -> None:
    @warming.warmer("every-minute", every=60)
    def a() -> list[Any]:
        return []

    @warming.warmer("hourly", every=timedelta(hours=1))
    def b() -> list[Any]:
        return []

    @warming.warmer("manual")
    def c() -> list[Any]:
        return []

    schedule = warming.beat_schedule()
    assert set(schedule) == {"lexigram-warm-every-minute", "lexigram-warm-hourly"}
    entry = schedule["lexigram-warm-every-minute"]
    assert entry["task"] == "lexigram_cache_django.warm" and entry["args"] == ("every-minute",)

    app = Celery("beat-test", set_as_current=False)
    app.conf.beat_schedule = schedule
    app.conf.broker_url = "memory://"
    scheduler = PersistentScheduler(app=app, schedule_filename=str(tmp_path / "beat"))
    try:
        entries = scheduler.schedule
        assert {"lexigram-warm-every-minute", "lexigram-warm-hourly"} <= set(entries)
        due, next_in = entries["lexigram-warm-every-minute"].is_due()
        assert entries["lexigram-warm-every-minute"].task == "lexigram_cache_django.warm"
        assert 0 < next_in <= 60 or due
        assert entries["lexigram-warm-hourly"].schedule.run_every == timedelta(hours=1)
    finally:
        scheduler.close()


def test_the_command_output_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    @warming.warmer("good")
    def good() -> dict[str, int]:
        return {"g": 1}

    @warming.warmer("bad")
    def bad() -> list[Any]:
        raise RuntimeError("down")

    call_command("cache", "warm", "good")
    out = capsys.readouterr().out
    assert "good: 1 written, 0 skipped, 0 failed" in out
    with pytest.raises(SystemExit) as exit_:
        call_command("cache", "warm", "--all")
    assert exit_.value.code == 1
    out = capsys.readouterr().out
    assert "bad: 0 written, 0 skipped, 1 failed" in out and "RuntimeError: down" in out
    with pytest.raises(SystemExit) as exit_:
        call_command("cache", "warm", "good", "missing")
    assert exit_.value.code == 2
    assert "unknown warmer(s): missing" in capsys.readouterr().err
    call_command("cache", "warm", "--list")
    assert "bad" in capsys.readouterr().out


def test_the_command_through_celery_eager(capsys: pytest.CaptureFixture[str]) -> None:
    @warming.warmer("eager")
    def eager() -> dict[str, int]:
        return {"e": 1}

    call_command("cache", "warm", "eager", "--celery")
    assert "eager: 1 written" in capsys.readouterr().out
    assert caches["default"].get("e") == 1


def test_invalidating_a_warmers_tags_re_warms_it() -> None:
    runs: list[int] = []

    @warming.warmer("pets", tags=["pets"], rewarm=True)
    def pets() -> dict[str, int]:
        runs.append(1)
        return {"pets": len(runs)}

    @warming.warmer("others", tags=["others"], rewarm=True)
    def others() -> dict[str, int]:
        runs.append(100)
        return {}

    invalidate_now(["pets", "unrelated"])  # eager Celery: the warm task runs inline
    assert runs == [1] and caches["default"].get("pets") == 1


def test_without_a_broker_re_warm_runs_in_one_thread_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    def no_broker(name: str) -> Any:
        raise ConnectionError("broker down")

    monkeypatch.setattr(warming, "_enqueuer", no_broker)
    release = threading.Event()
    runs: list[int] = []

    @warming.warmer("threaded", tags=["t"], rewarm=True)
    def threaded() -> dict[str, int]:
        runs.append(1)
        release.wait(5)
        return {"threaded": len(runs)}

    for _ in range(5):  # five invalidations while the first re-warm runs
        invalidate_now("t")
    release.set()
    deadline = time.monotonic() + 5
    while warming._rewarming and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runs == [1, 1]  # the running one, then once more for the ones meanwhile
    assert caches["default"].get("threaded") == 2


def test_warm_all_enqueues_one_task_per_warmer() -> None:
    from lexigram_cache_django import tasks

    for name in ("w1", "w2"):
        warming.warmer(name)(lambda name=name: {name: name})
    ids = tasks.warm_all.delay().get()
    assert set(ids) == {"w1", "w2"}
    assert caches["default"].get("w1") == "w1" and caches["default"].get("w2") == "w2"


@pytest.mark.django_db(transaction=True)
def test_re_warm_waits_for_the_commit() -> None:
    from django.db import transaction

    from example_project.petclinic.models import Owner, Pet

    runs: list[int] = []

    @warming.warmer("pet-count", tags=[Pet], rewarm=True)
    def pet_count() -> dict[str, int]:
        runs.append(Pet.objects.count())
        return {"pet-count": runs[-1]}

    with transaction.atomic():
        owner = Owner.objects.create(name="A", email="a@example.com", city="X")
        Pet.objects.create(name="Rex", species="dog", owner=owner)
        assert runs == []
    assert runs == [1]  # after the commit, seeing the committed row


def test_warmer_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="rewarm"):
        warming.warmer("x", rewarm=True)
    with pytest.raises(ValueError, match="concurrency"):
        warming.warmer("x", concurrency=0)
    with pytest.raises(TypeError, match="cached"):
        warming.warmer("x", cached=len)


def test_check_warming(settings: Settings) -> None:
    assert warming.check_warming() == []
    settings.LEXIGRAM_CACHE = {
        "SWR_REFRESH": "fork",
        "SWR_THREADS": 0,
        "CELERY_QUEUE": "",
        "WARMERS_AUTODISCOVER": "yes",
    }

    @warming.warmer("elsewhere", alias="nowhere")
    def elsewhere() -> list[Any]:
        return []

    ids = sorted(m.id or "" for m in warming.check_warming())
    assert ids == [f"lexigram_cache.E16{n}" for n in (1, 2, 4, 5, 6)]


def test_example_project_warmers_are_discovered() -> None:
    warming._registry.clear()
    warming.autodiscover()  # already imported: registered again by hand below
    import importlib

    import example_project.petclinic.warmers as module

    importlib.reload(module)
    assert {"clinic-counts", "species-counts"} <= set(warming.registry())
    assert warming.registry()["species-counts"].rewarm
