"""``manage.py cache`` subcommands against real servers: output, --json, exit codes."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.core.management import CommandError, call_command
from django.test import override_settings

from tests.conftest import backend_config
from tests.servers import start_redis

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = {
    "BACKEND": "lexigram_cache_django.backends.memory.MemoryCache",
    "LOCATION": "tests-default",
}
REDIS = "lexigram_cache_django.backends.redis.RedisCache"
STATS_KEYS = {
    "alias", "backend", "location", "lexigram", "process", "site", "site_scope",
    "hit_ratio", "latency", "server", "tiers", "features",
}  # fmt: skip
HEALTH_KEYS = {
    "alias", "backend", "location", "status", "ping_ms", "breaker", "version",
    "memory_used", "memory_limit", "eviction_policy", "servers", "error",
}  # fmt: skip


@pytest.fixture
def alias(backend_kind: str, request: pytest.FixtureRequest) -> Iterator[str]:
    config = backend_config(backend_kind, request)
    with override_settings(CACHES={"default": DEFAULT, "c": config}):
        yield "c"
        caches["c"].clear()


def run(*args: str) -> str:
    out = StringIO()
    call_command("cache", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def exit_code(*args: str) -> int:
    with pytest.raises(SystemExit) as raised:
        run(*args)
    return int(raised.value.code or 0)


def json_documents(text: str) -> list[Any]:
    decoder = json.JSONDecoder()
    docs, pos = [], 0
    while pos < len(text.rstrip()):
        doc, end = decoder.raw_decode(text, pos)
        docs.append(doc)
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return docs


def manage(
    caches_config: dict[str, Any], *args: str, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """``python -m django cache ARGS`` in a process of its own, with these CACHES."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.ops_settings",
        "LEXIGRAM_OPS_CACHES": json.dumps(caches_config),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "django", "cache", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, **kw,
    )  # fmt: skip


# -- stats -------------------------------------------------------------------------------------


def test_stats_human_table(alias: str, backend_kind: str) -> None:
    caches[alias].set("k", 1, 60)
    caches[alias].get("k")
    caches[alias].get("nope")
    text = run("stats", alias)
    assert f"c  ({backend_kind}," in text
    lines = text.splitlines()
    header = next(line for line in lines if "this process" in line)
    assert header.split()[0] == "counter"
    hits = next(line for line in lines if line.strip().startswith("hits"))
    assert hits.split()[1] == "1"
    assert "50.0%" in next(line for line in lines if "hit ratio" in line)
    assert "\x1b[" not in text  # no colour when not a terminal
    if backend_kind == "memory":
        assert "per process only" in text
    else:
        assert "server (" in text and "latency (this process" in text


def test_stats_json_schema(alias: str) -> None:
    caches[alias].get("nope")
    [doc] = json_documents(run("stats", "--json"))
    assert doc["schema"] == 1
    assert [e["alias"] for e in doc["aliases"]] == ["default", "c"]
    for entry in doc["aliases"]:
        assert set(entry) == STATS_KEYS
    assert doc["aliases"][1]["process"]["misses"] == 1


def test_stats_watch_repeats(alias: str) -> None:
    docs = json_documents(run("stats", alias, "--json", "--watch", "0.01", "--iterations", "3"))
    assert len(docs) == 3 and all(d["aliases"][0]["alias"] == "c" for d in docs)


def test_stats_unknown_alias_is_a_command_error(alias: str) -> None:
    with pytest.raises(CommandError, match="unknown cache alias 'zzz'"):
        run("stats", "zzz")


# -- health ------------------------------------------------------------------------------------


def test_health_up_exits_zero(alias: str, backend_kind: str) -> None:
    text = run("health", alias)
    row = next(line for line in text.splitlines() if line.startswith("c "))
    assert row.split()[:3] == ["c", backend_kind, "up"]
    [doc] = json_documents(run("health", alias, "--json"))
    assert doc["status"] == "up" and set(doc["aliases"][0]) == HEALTH_KEYS


def test_health_degraded_exits_one(redis_server: Any) -> None:
    dead = start_redis()
    dead.stop()
    config = {"BACKEND": REDIS, "LOCATION": [redis_server.url, dead.url]}
    with override_settings(CACHES={"default": DEFAULT, "c": config}):
        assert exit_code("health", "c") == 1


def test_health_of_a_stopped_server_exits_two_in_its_own_process(redis_server: Any) -> None:
    server = start_redis()
    config = {"default": DEFAULT, "c": {"BACKEND": REDIS, "LOCATION": server.url}}
    try:
        assert manage(config, "health").returncode == 0
        server.stop()
        started = time.monotonic()
        done = manage(config, "health", "c", "--json")
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    print(
        f"health of a stopped server: rc {done.returncode} in {elapsed:.2f}s (with process start)"
    )
    assert done.returncode == 2, done.stderr
    assert json.loads(done.stdout)["status"] == "down"


# -- clear -------------------------------------------------------------------------------------


def test_clear_refuses_without_yes_when_not_a_terminal(alias: str) -> None:
    caches[alias].set("k", 1)
    with pytest.raises(CommandError, match="without --yes"):
        run("clear", alias)
    assert caches[alias].get("k") == 1
    assert "cleared 'c'" in run("clear", alias, "--yes")
    assert caches[alias].get("k") is None


def _on_a_terminal(config: dict[str, Any], args: list[str], answer: bytes) -> tuple[int, str]:
    master, slave = pty.openpty()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.ops_settings",
        "LEXIGRAM_OPS_CACHES": json.dumps(config),
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "django", "cache", *args],
        stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT,
    )  # fmt: skip
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    answered = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        if not answered and b"[y/N]" in seen:
            os.write(master, answer)
            answered = True
        if proc.poll() is not None and not ready:
            break
    proc.wait(timeout=30)
    os.close(master)
    return proc.returncode, seen.decode(errors="replace")


def test_clear_asks_on_a_terminal(redis_server: Any, request: pytest.FixtureRequest) -> None:
    config = backend_config("redis", request)
    with override_settings(CACHES={"default": DEFAULT, "c": config}):
        caches["c"].set_many({f"k{i}": i for i in range(10)})
        rc, text = _on_a_terminal({"default": DEFAULT, "c": config}, ["clear", "c"], b"n\n")
        assert rc == 1 and "not cleared" in text
        assert caches["c"].get("k1") == 1
        rc, text = _on_a_terminal({"default": DEFAULT, "c": config}, ["clear", "c"], b"y\n")
        assert rc == 0 and "10 entries removed" in text, text
        assert caches["c"].get("k1") is None


# -- get, delete, keys -------------------------------------------------------------------------


def test_get_human_and_json(alias: str) -> None:
    caches[alias].set("k", [1, 2, 3], 300, tags=["t"])  # type: ignore[call-arg]
    text = run("get", alias, "k")
    assert "[1, 2, 3]" in text and "tag t: current" in text
    [doc] = json_documents(run("get", alias, "k", "--json"))
    assert doc["found"] is True and doc["type"] == "list"
    assert doc["tags"][0]["tag"] == "t"
    assert exit_code("get", alias, "absent") == 1


def test_delete(alias: str) -> None:
    caches[alias].set_many({"a": 1, "b": 2})
    assert run("delete", alias, "a", "b", "c").strip() == "deleted 2 of 3 keys"


def test_keys_or_a_clear_message_on_memcached(alias: str, backend_kind: str) -> None:
    caches[alias].set_many({"user:1": 1, "user:2": 2, "other": 3})
    if backend_kind == "memcached":
        with pytest.raises(CommandError, match="memcached cannot list its keys"):
            run("keys", alias, "user:*")
        return
    assert sorted(run("keys", alias, "user:*").split()) == ["user:1", "user:2"]
    [doc] = json_documents(run("keys", alias, "*", "--limit", "1", "--json"))
    assert len(doc["keys"]) == 1


def test_keys_on_memcached_in_a_real_process(memcached_server: Any) -> None:
    config = {"BACKEND": "lexigram_cache_django.backends.memcached.MemcachedCache",
              "LOCATION": memcached_server.address}  # fmt: skip
    done = manage({"default": DEFAULT, "m": config}, "keys", "m", "*")
    assert done.returncode == 1
    assert "memcached cannot list its keys" in done.stderr
    assert "Traceback" not in done.stderr


# -- invalidate, doctor ------------------------------------------------------------------------


def test_invalidate_tags(alias: str) -> None:
    caches[alias].set("k", 1, 60, tags=["a"])  # type: ignore[call-arg]
    text = run("invalidate", "--alias", alias, "--tag", "a", "--tag", "b")
    assert text.strip() == "invalidated 2 tags in 'c': a, b"
    assert caches[alias].get("k") is None


@pytest.mark.django_db
def test_invalidate_model_rows(alias: str) -> None:
    from example_project.petclinic.models import Pet

    caches[alias].set("pet-7", 1, 60, tags=[(Pet, 7)])  # type: ignore[call-arg]
    text = run("invalidate", "--alias", alias, "--model", "petclinic.Pet", "--pk", "7")
    assert "row:petclinic.pet:7" in text
    assert caches[alias].get("pet-7") is None


def test_invalidate_needs_a_tag_or_a_model(alias: str) -> None:
    with pytest.raises(CommandError, match="at least one tag"):
        run("invalidate", "--alias", alias)


def test_doctor_human_json_and_exit_status(redis_server: Any) -> None:
    gone = start_redis()
    gone.stop()
    up = {"BACKEND": REDIS, "LOCATION": redis_server.url, "KEY_PREFIX": "doctor-cmd"}
    with override_settings(CACHES={"default": DEFAULT, "up": up}):
        text = run("doctor")
        assert "lexigram_cache.D002" in text and "hint:" in text
        [doc] = json_documents(run("doctor", "--json"))
        assert {"level", "code", "message", "alias", "hint"} == set(doc["findings"][0])
    down = {"BACKEND": REDIS, "LOCATION": gone.url}
    with override_settings(CACHES={"default": DEFAULT, "down": down}):
        assert exit_code("doctor") == 1
