"""Tags by version on every backend: O(1) invalidation that never serves a stale entry."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from example_project.petclinic.models import Owner, Pet
from lexigram_cache_django.backends.base import LexigramCache
from lexigram_cache_django.tags import tag_name, tag_names, tag_record_key


def delete_raw(cache: LexigramCache, final_key: str) -> None:
    """Delete a record behind the cache's back (as eviction or a restart would)."""
    if cache.backend_name == "memory":
        with cache._store.lock:  # type: ignore[attr-defined]
            cache._store.data.pop(final_key, None)  # type: ignore[attr-defined]
    elif cache.backend_name == "redis":
        cache.get_client().delete(final_key)  # type: ignore[attr-defined]
    else:
        cache.get_client().delete(final_key)  # type: ignore[attr-defined]


# -- names -------------------------------------------------------------------------------------


def test_tag_names_for_strings_models_rows() -> None:
    assert tag_name("pets") == "pets"
    assert tag_name(Pet) == "model:petclinic.pet"
    assert tag_name(Pet(pk=42)) == "row:petclinic.pet:42"
    assert tag_name((Pet, 42)) == tag_name(Pet(pk=42))
    assert tag_names([Pet, "b", "a", "b"]) == ("a", "b", "model:petclinic.pet")
    assert tag_names((Owner, 7)) == ("row:petclinic.owner:7",)
    with pytest.raises(ValueError, match="unsaved"):
        tag_name(Pet())
    with pytest.raises(TypeError, match="a tag is"):
        tag_name(3.5)  # type: ignore[arg-type]


def test_unsafe_tag_names_are_hashed_into_valid_keys() -> None:
    assert tag_record_key("pets") == "tag:pets"
    hashed = tag_record_key("a tag with spaces" + "x" * 300)
    assert hashed.startswith("tag:h:") and " " not in hashed and len(hashed) < 80


# -- behaviour ------------------------------------------------------------------------------------


def test_invalidating_a_tag_misses_only_its_entries(any_cache: LexigramCache) -> None:
    any_cache.set("a", 1, tags=["pets"])
    any_cache.set("b", 2, tags=["owners"])
    any_cache.set("c", 3)
    any_cache.invalidate_tags("pets")
    assert any_cache.get("a") is None
    assert any_cache.get("b") == 2
    assert any_cache.get("c") == 3
    stats = any_cache.stats()
    assert stats["tag_invalidations"] == 1
    assert stats["stale_by_tag"] >= 1


def test_an_entry_with_two_tags_misses_when_either_is_invalidated(
    any_cache: LexigramCache,
) -> None:
    for tag in ("pets", "owners"):
        any_cache.set("both", "v", tags=["pets", "owners"])
        assert any_cache.get("both") == "v"
        any_cache.invalidate_tags(tag)
        assert any_cache.get("both") is None
        assert not any_cache.has_key("both")


def test_model_and_row_tags(any_cache: LexigramCache) -> None:
    any_cache.set("pet-list", ["Rex", "Tom"], tags=[Pet])
    any_cache.set("pet-1", "Rex", tags=[(Pet, 1)])
    any_cache.set("pet-2", "Tom", tags=[Pet(pk=2)])
    any_cache.invalidate_tags(Pet(pk=1))
    assert any_cache.get("pet-1") is None
    assert any_cache.get("pet-2") == "Tom"
    assert any_cache.get("pet-list") == ["Rex", "Tom"]
    any_cache.invalidate_tags(Pet)
    assert any_cache.get("pet-list") is None
    assert any_cache.get("pet-2") == "Tom"  # row tags are separate from the model tag


def test_get_many_mixes_tagged_and_untagged(any_cache: LexigramCache) -> None:
    any_cache.set_many({"t1": 1, "t2": 2}, tags=["pets"])
    any_cache.set("o1", 10, tags=["owners"])
    any_cache.set_many({"u1": "x", "u2": "y"})
    keys = ["t1", "t2", "o1", "u1", "u2", "missing"]
    assert any_cache.get_many(keys) == {"t1": 1, "t2": 2, "o1": 10, "u1": "x", "u2": "y"}
    any_cache.invalidate_tags("pets")
    assert any_cache.get_many(keys) == {"o1": 10, "u1": "x", "u2": "y"}


def test_a_tag_record_deleted_behind_the_caches_back_makes_its_entries_miss(
    any_cache: LexigramCache,
) -> None:
    any_cache.set("a", 1, tags=["pets"])
    any_cache.set("b", 2, tags=["owners"])
    delete_raw(any_cache, any_cache.tag_keys("pets")[0])
    assert any_cache.get("a") is None
    assert any_cache.get("b") == 2
    any_cache.set("a", 1, tags=["pets"])  # re-created at a fresh random version
    assert any_cache.get("a") == 1


def test_an_outdated_tag_hint_never_serves_a_stale_entry(any_cache: LexigramCache) -> None:
    """Another process rewrote the key under other tags: this process's hint is wrong."""
    any_cache.set("k", 1, tags=["a"])
    any_cache.set("k", 2, tags=["b"])
    made = any_cache.make_and_validate_key("k")
    any_cache._tag_hints.learn(made, any_cache.tag_keys("a"))  # still believes "a"
    any_cache.invalidate_tags("b")
    assert any_cache.get("k") is None
    assert any_cache.get_many(["k"]) == {}
    any_cache.set("k", 3, tags=["b"])
    any_cache._tag_hints.learn(made, any_cache.tag_keys("a"))
    assert any_cache.get("k") == 3
    assert any_cache.get_or_set("k", lambda: 4, 60) == 3


def test_add_and_get_or_set_with_tags(any_cache: LexigramCache) -> None:
    assert any_cache.add("k", "first", tags=["pets"])
    assert not any_cache.add("k", "second", tags=["pets"])
    any_cache.invalidate_tags("pets")
    assert any_cache.add("k", "third", tags=["pets"])  # the stale entry no longer counts
    assert any_cache.get("k") == "third"
    calls = itertools.count()
    compute = lambda: next(calls)  # noqa: E731
    assert any_cache.get_or_set("g", compute, 60, tags=[Pet]) == 0
    assert any_cache.get_or_set("g", compute, 60, tags=[Pet]) == 0
    any_cache.invalidate_tags(Pet)
    assert any_cache.get_or_set("g", compute, 60, tags=[Pet]) == 1


def test_set_with_tags_and_invalidate_by_tag_aliases(any_cache: LexigramCache) -> None:
    any_cache.set_with_tags("k", "v", ["pets"], 60)
    assert any_cache.get("k") == "v"
    any_cache.invalidate_by_tag("pets")
    assert any_cache.get("k") is None
    any_cache.set("k2", "v", tags=["a", "b"])
    any_cache.invalidate_tags(["a", "c"])  # a list, as well as varargs
    assert any_cache.get("k2") is None


async def test_async_tags(any_cache: LexigramCache) -> None:
    await any_cache.aset("a", 1, tags=["pets"])
    await any_cache.aset_many({"b": 2}, tags=["pets"])
    assert await any_cache.aget_many(["a", "b"]) == {"a": 1, "b": 2}
    await any_cache.ainvalidate_tags("pets")
    assert await any_cache.aget("a") is None
    assert await any_cache.aget_many(["a", "b"]) == {}
    assert await any_cache.aget_or_set("c", lambda: 3, 60, tags=["pets"]) == 3
    await any_cache.ainvalidate_tags("pets")
    assert await any_cache.aget_or_set("c", lambda: 4, 60, tags=["pets"]) == 4


def test_versions_and_prefixes_behave_as_for_plain_entries(make_cache: Any) -> None:
    cache = make_cache()
    cache.set("k", "v1", tags=["pets"], version=1)
    cache.set("k", "v2", tags=["pets"], version=2)
    assert cache.incr_version("k", version=2) == 3  # moves the entry, keeping its tags
    assert cache.get("k", version=3) == "v2"
    cache.invalidate_tags("pets")
    assert cache.get("k", version=1) is None
    assert cache.get("k", version=3) is None

    other = make_cache()  # another KEY_PREFIX (or LOCATION): its tags are its own
    cache.set("k", "mine", tags=["pets"])
    other.set("k", "theirs", tags=["pets"])
    other.invalidate_tags("pets")
    assert cache.get("k") == "mine"
    assert other.get("k") is None


def test_concurrent_writers_and_invalidators_never_leave_a_stale_entry(
    any_cache: LexigramCache,
) -> None:
    """A write that completed before an invalidation started is never readable after it."""
    keys = [f"k{i}" for i in range(4)]
    ids = itertools.count(1)
    started_invalidations = 0
    completed_before: dict[int, int] = {}  # write id -> invalidations started when it completed
    stop = threading.Event()
    violations: list[str] = []

    def writer() -> None:
        for i in itertools.count():
            if stop.is_set():
                return
            write_id = next(ids)
            any_cache.set(keys[i % len(keys)], write_id, tags=["hot"])
            completed_before[write_id] = started_invalidations

    def invalidator() -> None:
        nonlocal started_invalidations
        for n in range(1, 31):
            started_invalidations = n
            any_cache.invalidate_tags("hot")
            for key in keys:
                seen = any_cache.get(key)
                marker = completed_before.get(seen) if seen is not None else None
                if marker is not None and marker < n:
                    violations.append(f"{key}={seen} completed before invalidation {n}")
        stop.set()

    threads = [threading.Thread(target=writer) for _ in range(3)]
    threads.append(threading.Thread(target=invalidator))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert violations == []
    assert next(ids) > 30  # the writers really ran alongside


# -- property: the cache behaves like a simple model --------------------------------------

TAGS = ["a", "b", "c"]
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("set"), st.sampled_from(["k1", "k2", "k3"]), st.sets(st.sampled_from(TAGS))
        ),
        st.tuples(st.just("invalidate"), st.sampled_from(TAGS), st.just(None)),
        st.tuples(st.just("get"), st.sampled_from(["k1", "k2", "k3"]), st.just(None)),
    ),
    max_size=30,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_tags_match_a_simple_model(make_cache: Any, ops: list[tuple[str, str, Any]]) -> None:
    cache = make_cache()
    model: dict[str, tuple[int, frozenset[str]]] = {}
    for n, (op, name, tags) in enumerate(ops):
        if op == "set":
            cache.set(name, n, tags=sorted(tags))
            model[name] = (n, frozenset(tags))
        elif op == "invalidate":
            cache.invalidate_tags(name)
            model = {k: v for k, v in model.items() if name not in v[1]}
        else:
            expected = model[name][0] if name in model else None
            assert cache.get(name) == expected
    assert cache.get_many(["k1", "k2", "k3"]) == {k: v[0] for k, v in model.items()}
