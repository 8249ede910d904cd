"""models: cached model lookups vs the ORM on PostgreSQL; encryption's cost per value.

* ``get(pk=)``: ``Pet.objects.cached().get(pk=...)`` on the memory and Redis backends vs
  ``Pet.objects.get(pk=...)`` on PostgreSQL (127.0.0.1:5432 by default). Goal: >= 5x.
* ``get_many(100)``: one cache round trip for 100 rows vs the ORM's ``in_bulk`` of the
  same 100 pks. Goal: >= 10x. Shown beside it: ``@cached`` over the same ``in_bulk``
  (one entry for the whole batch, tagged with the model), the cached-queryset pattern.
* encryption: encode + decode of one value through the codec, signed pickle with
  ``ENCRYPTION_KEY`` (AES-256-GCM-SIV) vs without, for a small dict and a model instance;
  and a Redis ``set`` + ``get`` of the small dict both ways (what a request pays).

PostgreSQL is the machine's shared server (not pinned to our CPU); the scenario creates
its own database there (``lexigram_bench_<pid>``) and drops it at the end, or skips if the
server is unreachable. ``LEXIGRAM_BENCH_PG_*`` variables point it elsewhere.
"""

from __future__ import annotations

import functools
import itertools
import os
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from benchmarks.harness import Case, Context
from benchmarks.report import profile_report
from benchmarks.servers import start_redis, wait_for_bus

DESCRIPTION = "cached get(pk)/get_many(100) vs the ORM on PostgreSQL; encryption cost per value"

ROWS = 1000
BATCH = 100
GET_GOAL = (">=", 5.0)
MANY_GOAL = (">=", 10.0)
PG = "postgres"


def _database(ctx: Context) -> None:
    """Create the scenario's own test database on the PostgreSQL server."""
    from django.db import connections

    connection = connections[PG]
    try:
        connection.ensure_connection()
    except Exception as exc:
        ctx.skip(f"PostgreSQL ({connection.settings_dict['HOST']}) unreachable: {exc}")
    connection.close()
    old_name = connection.settings_dict["NAME"]
    ctx.log(f"creating database {connection.settings_dict['TEST']['NAME']}")
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    ctx.add_cleanup(connection.creation.destroy_test_db, old_name, verbosity=0)


def _caches(ctx: Context, redis_url: str) -> None:
    from django.test.utils import override_settings

    from lexigram_cache_django import invalidation

    override = override_settings(
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "bench-memory": {
                "BACKEND": "lexigram_cache_django.backends.memory.MemoryCache",
                "LOCATION": "models-bench",
                "TIMEOUT": 3600,
                "OPTIONS": {"MAX_ENTRIES": 10 * ROWS},
            },
            "bench-redis": {
                "BACKEND": "lexigram_cache_django.backends.redis.RedisCache",
                "LOCATION": redis_url,
                "TIMEOUT": 3600,
            },
            "bench-tiered": {
                "BACKEND": "lexigram_cache_django.backends.tiered.TieredCache",
                "TIMEOUT": 3600,
                "KEY_PREFIX": "tiered",
                "OPTIONS": {
                    "L1": {
                        "BACKEND": "lexigram_cache_django.backends.memory.MemoryCache",
                        "LOCATION": "models-bench-l1",
                        "OPTIONS": {"MAX_ENTRIES": 10 * ROWS},
                    },
                    "L2": {
                        "BACKEND": "lexigram_cache_django.backends.redis.RedisCache",
                        "LOCATION": redis_url,
                    },
                },
            },
        }
    )
    override.enable()
    ctx.add_cleanup(override.disable)
    invalidation.connect()


def _fill() -> list[int]:
    from example_project.petclinic.models import Owner, Pet

    owner = Owner.objects.using(PG).create(name="Ann", email="ann@example.com", city="Lyon")
    pets = [Pet(name=f"pet{i}", species="dog", owner=owner, birth_date=None) for i in range(ROWS)]
    Pet.objects.using(PG).bulk_create(pets)
    return list(Pet.objects.using(PG).order_by("pk").values_list("pk", flat=True))


def _lookup_cases(ctx: Context, redis_url: str) -> list[Case]:
    from django.core.cache import caches

    from example_project.petclinic.models import Pet
    from lexigram_cache_django.decorators import cached

    pks = _fill()
    orm = Pet.objects.using(PG)
    memory = Pet.objects.using(PG).cached(cache="bench-memory")
    redis = Pet.objects.using(PG).cached(cache="bench-redis")
    tiered = Pet.objects.using(PG).cached(cache="bench-tiered")
    batches = [pks[i : i + BATCH] for i in range(0, len(pks), BATCH)]
    wait_for_bus(caches["bench-tiered"])
    for lookup in (memory, redis, tiered):  # warm: every row and batch cached
        for batch in batches:
            assert len(lookup.get_many(batch)) == BATCH
    raw_mget = _raw_mget(redis, batches, redis_url)
    assert redis.get(pk=pks[0]).name == orm.get(pk=pks[0]).name
    one = itertools.cycle(pks).__next__
    many = itertools.cycle(batches).__next__

    @cached(3600, tags=[Pet], cache="bench-redis", key="bench:pets:{first}")
    def page(first: int, batch: list[int]) -> dict[int, Any]:
        return orm.in_bulk(batch)

    for batch in batches:
        page(batch[0], batch)
    if os.environ.get("LEXIGRAM_BENCH_PROFILE"):
        for name, lookup in (("memory", memory), ("redis", redis), ("tiered", tiered)):
            ctx.log(f"profile of 300 get_many({BATCH}), {name}:")
            ctx.log(profile_report(functools.partial(_many_of, lookup, many), 300, "tottime", 18))

    def one_entry() -> Any:
        batch = many()
        return page(batch[0], batch)

    return [
        Case(
            name="get(pk=) on PostgreSQL",
            candidates={
                "ORM get": lambda: orm.get(pk=one()),
                # The whole chain a view runs, queryset and lookup object included.
                "cached get (memory)": lambda: orm.cached(cache="bench-memory").get(pk=one()),
                "cached get (redis)": lambda: orm.cached(cache="bench-redis").get(pk=one()),
            },
            baseline="ORM get",
            goals={"cached get (memory)": GET_GOAL, "cached get (redis)": GET_GOAL},
        ),
        Case(
            name=f"get_many({BATCH}) on PostgreSQL",
            candidates={
                f"ORM in_bulk({BATCH})": lambda: orm.in_bulk(many()),
                f"cached get_many({BATCH}) (memory)": lambda: orm.cached(
                    cache="bench-memory"
                ).get_many(many()),
                f"cached get_many({BATCH}) (redis)": lambda: orm.cached(
                    cache="bench-redis"
                ).get_many(many()),
                f"cached get_many({BATCH}) (tiered)": lambda: orm.cached(
                    cache="bench-tiered"
                ).get_many(many()),
                f"@cached in_bulk({BATCH}), one entry (redis)": one_entry,
                f"raw redis-py MGET of the {BATCH} entries + tag records": raw_mget,
            },
            baseline=f"ORM in_bulk({BATCH})",
            goals={
                f"cached get_many({BATCH}) (memory)": MANY_GOAL,
                f"cached get_many({BATCH}) (redis)": MANY_GOAL,
                f"cached get_many({BATCH}) (tiered)": MANY_GOAL,
            },
            note=(
                "the @cached row is the cached-queryset pattern: one entry, model tag; the "
                "raw MGET row is Redis's floor for per-row entries (the same keys, no "
                "decoding, no instances)"
            ),
        ),
    ]


def _encryption_cases(ctx: Context, redis_url: str) -> list[Case]:
    from example_project.petclinic.models import Pet
    from lexigram_cache_django.backends.base import build_codec

    key = secrets.token_urlsafe(32)
    plain, encrypted = build_codec({}), build_codec({"ENCRYPTION_KEY": key})
    person = {"name": "Ann Archer", "email": "ann@example.com", "phone": "+33 6 12 34 56 78"}
    person["address"] = "12 rue de la République, 69002 Lyon"
    pet = Pet.objects.using(PG).select_related("owner").order_by("pk").first()
    assert pet is not None
    out = []
    values: list[tuple[str, Any]] = [("a 4-field dict", person), ("a Pet with its owner", pet)]
    for label, value in values:
        p_data, e_data = plain.encode(value), encrypted.encode(value)
        assert encrypted.decode(e_data) == value
        ctx.log(f"{label}: {len(p_data)} bytes signed pickle, {len(e_data)} encrypted")

        def both(codec: Any, value: Any = value) -> Callable[[], Any]:
            return lambda: codec.decode(codec.encode(value))

        out.append(
            Case(
                name=f"encode+decode {label}",
                candidates={
                    "signed pickle": both(plain),
                    "signed pickle + AES-GCM-SIV": both(encrypted),
                },
                baseline="signed pickle",
                note="ops/s of one encode and one decode; 1/ops is the cost per value",
            )
        )
    prefix = "models-bench-enc"
    r_plain = ctx.make_cache(
        "lexigram_cache_django.backends.redis.RedisCache", redis_url, KEY_PREFIX=prefix + "p"
    )
    r_enc = ctx.make_cache(
        "lexigram_cache_django.backends.redis.RedisCache",
        redis_url,
        KEY_PREFIX=prefix + "e",
        OPTIONS={"ENCRYPTION_KEY": key},
    )

    def round_trip(cache: Any) -> Any:
        cache.set("person", person, 60)
        return cache.get("person")

    assert round_trip(r_enc) == person
    out.append(
        Case(
            name="redis set+get of a 4-field dict",
            candidates={
                "signed pickle": lambda: round_trip(r_plain),
                "signed pickle + AES-GCM-SIV": lambda: round_trip(r_enc),
            },
            baseline="signed pickle",
        )
    )
    return out


def _raw_mget(lookup: Any, batches: list[list[int]], redis_url: str) -> Callable[[], Any]:
    """One redis-py ``MGET`` of what a batch hit reads (the entries and their row tags'
    records), with the same client library and server: no decoding, no instances."""
    import redis as redis_py
    from django.core.cache import caches

    backend: Any = caches["bench-redis"]
    field = lookup.field("pk")
    client = redis_py.Redis.from_url(redis_url)
    reads = []
    for batch in batches:
        keys = list(lookup._keys(field, batch).values())
        made = [backend.make_and_validate_key(k) for k in keys]
        tags = [backend.tag_keys(lookup.tags_of(None, field, pk))[0] for pk in batch]
        reads.append(made + tags)
    assert all(client.mget(read)[0] is not None for read in reads)
    cycle = itertools.cycle(reads).__next__
    return lambda: client.mget(cycle())


def _many_of(lookup: Any, many: Callable[[], list[int]]) -> Any:
    return lookup.get_many(many())


def cases(ctx: Context) -> Iterable[Case]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        ctx.skip("psycopg is not installed")
    try:
        import cryptography  # noqa: F401
    except ImportError:
        ctx.skip("cryptography is not installed (the encryption extra)")
    _database(ctx)
    redis_url = start_redis(ctx)
    _caches(ctx, redis_url)
    return [*_lookup_cases(ctx, redis_url), *_encryption_cases(ctx, redis_url)]
