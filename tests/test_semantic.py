"""The semantic cache with the real all-MiniLM-L6-v2 model, on memory, Redis, Memcached aliases.

Skipped, with the reason, where the ``semantic`` extra's packages are missing (the model
needs torch: the Python 3.12 leg runs without it).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_django.fixtures import Settings

from lexigram_cache_django.semantic.embeddings import minilm_available
from tests.conftest import backend_config

pytest.importorskip("faiss", reason="faiss-cpu (the 'semantic' extra) is not installed")
_MISSING = minilm_available()
if _MISSING is not None:
    pytest.skip(
        f"the default embedder cannot load here ({_MISSING}); install the 'semantic' extra",
        allow_module_level=True,
    )

from lexigram_cache_django.semantic import SemanticCache, SemanticHit, semantic_cached  # noqa: E402
from lexigram_cache_django.semantic.embeddings import (  # noqa: E402
    SentenceTransformerEmbedder,
    load_minilm,
)

ALIAS = "semantic"
QUESTION = "What is Django?"
PARAPHRASE = "What exactly is Django?"
UNRELATED = "How long should I boil an egg?"


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEmbedder:
    """The model, loaded once for the whole session (5-8 s)."""
    return load_minilm()


@pytest.fixture(params=["memory", "redis", "memcached"])
def alias_config(request: pytest.FixtureRequest, settings: Settings) -> dict[str, Any]:
    config = backend_config(request.param, request)
    settings.CACHES = {**settings.CACHES, ALIAS: config}
    return config


@pytest.fixture
def semantic(alias_config: dict[str, Any], minilm: SentenceTransformerEmbedder) -> SemanticCache:
    return SemanticCache(alias=ALIAS, namespace=f"n{uuid.uuid4().hex[:8]}", sync_interval=0)


def test_paraphrase_hits_in_the_vector_tier(semantic: SemanticCache) -> None:
    semantic.store(QUESTION, "A web framework.", scope="t", model="gpt-x", cost=0.002)
    hit = semantic.lookup(PARAPHRASE, scope="t")
    assert isinstance(hit, SemanticHit)
    assert (hit.response, hit.exact, hit.model, hit.cost) == (
        "A web framework.",
        False,
        "gpt-x",
        0.002,
    )
    assert semantic.threshold <= hit.similarity < 1.0
    assert hit.prompt == QUESTION


def test_unrelated_question_misses(semantic: SemanticCache) -> None:
    semantic.store(QUESTION, "A web framework.", scope="t")
    semantic.store("What is the capital of France?", "Paris.", scope="t")
    assert semantic.lookup(UNRELATED, scope="t") is None
    assert semantic.lookup("What is Flask?", scope="t") is None


def test_exact_repeat_hits_in_the_exact_tier(semantic: SemanticCache) -> None:
    semantic.store(QUESTION, "A web framework.", scope="t")
    for prompt in (QUESTION, "  what IS   django? "):
        hit = semantic.lookup(prompt, scope="t")
        assert hit is not None and hit.exact and hit.similarity == 1.0
    stats = semantic.stats()
    assert (stats["exact_hits"], stats["semantic_hits"], stats["misses"]) == (2, 0, 0)


def test_scopes_never_leak(semantic: SemanticCache) -> None:
    prompts = [QUESTION, "What is the capital of France?", "How do I sort a list in Python?"]
    for p in prompts:
        semantic.store(p, f"tenant-a: {p}", scope="tenant-a")
    semantic.store(QUESTION, "tenant-b's answer", scope="tenant-b")
    for p in prompts:  # the exact text and a paraphrase: never another scope's answer
        for scope in ("tenant-c", "", "tenant-a "):
            assert semantic.lookup(p, scope=scope) is None
            assert semantic.lookup(f"Please tell me: {p}", scope=scope) is None
    b = semantic.lookup(PARAPHRASE, scope="tenant-b")
    assert b is not None and b.response == "tenant-b's answer"
    a = semantic.lookup(QUESTION, scope="tenant-a")
    assert a is not None and a.response == f"tenant-a: {QUESTION}"


def test_invalidate_removes_both_tiers(semantic: SemanticCache) -> None:
    semantic.store(QUESTION, "A web framework.", scope="t")
    semantic.store("What is the capital of France?", "Paris.", scope="t")
    semantic.invalidate(QUESTION, scope="t")
    assert semantic.lookup(QUESTION, scope="t") is None
    assert semantic.lookup(PARAPHRASE, scope="t") is None
    assert semantic.stats()["indexed_entries"] == 1
    assert semantic.lookup("What is the capital of France?", scope="t") is not None


def test_expired_entries_leave_both_tiers(semantic: SemanticCache) -> None:
    # 2 s, not 1: memcached's clock ticks in whole seconds, so an exptime of 1 can end
    # at once (seen in CI, before the first lookup had finished embedding).
    semantic.store(QUESTION, "A web framework.", scope="t", timeout=2)
    semantic.store("What is the capital of France?", "Paris.", scope="t", timeout=60)
    assert semantic.lookup(PARAPHRASE, scope="t") is not None
    time.sleep(2.3)
    assert semantic.lookup(QUESTION, scope="t") is None
    assert semantic.lookup(PARAPHRASE, scope="t") is None
    assert semantic.stats()["indexed_entries"] == 1  # swept from the FAISS index


def test_clear_one_scope_or_all(semantic: SemanticCache) -> None:
    semantic.store(QUESTION, "a", scope="a")
    semantic.store(QUESTION, "b", scope="b")
    semantic.clear(scope="a")
    assert semantic.lookup(QUESTION, scope="a") is None
    assert semantic.lookup(PARAPHRASE, scope="a") is None
    assert semantic.lookup(QUESTION, scope="b") is not None
    semantic.clear()
    assert semantic.lookup(QUESTION, scope="b") is None
    assert semantic.lookup(PARAPHRASE, scope="b") is None
    semantic.store(QUESTION, "again", scope="b")  # a cleared namespace takes new entries
    hit = semantic.lookup(PARAPHRASE, scope="b")
    assert hit is not None and hit.response == "again"


def test_an_entry_written_back_after_a_clear_stays_gone(semantic: SemanticCache) -> None:
    """A store racing a clear (its write lands after the clear's deletes) is not served."""
    semantic.store(QUESTION, "old", scope="a")
    key = semantic.entry_key(QUESTION, "a", semantic.index)
    raced = semantic.cache.get(key)
    semantic.clear(scope="a")
    semantic.cache.set(key, raced, None)  # the late write of an entry numbered before the clear
    assert semantic.lookup(QUESTION, scope="a") is None
    assert semantic.lookup(PARAPHRASE, scope="a") is None
    semantic.store(QUESTION, "new", scope="a")
    hit = semantic.lookup(QUESTION, scope="a")
    assert hit is not None and hit.response == "new"


def test_numbers_must_match_for_a_vector_hit(semantic: SemanticCache) -> None:
    semantic.store("What is 17 times 23?", "391", scope="m")
    loose = SemanticCache(
        alias=semantic.alias,
        embedder=semantic.embedder,
        namespace=semantic.namespace,
        threshold=0.8,
        numbers_must_match=False,
    )
    strict = SemanticCache(
        alias=semantic.alias,
        embedder=semantic.embedder,
        namespace=semantic.namespace,
        threshold=0.8,
    )
    assert loose.lookup("What is 17 times 24?", scope="m") is not None  # the vectors are close
    assert strict.lookup("What is 17 times 24?", scope="m") is None
    hit = strict.lookup("What's 17 times 23?", scope="m")
    assert hit is not None and hit.response == "391" and not hit.exact


def test_stats_for_alias_sums_the_alias_caches(semantic: SemanticCache) -> None:
    from lexigram_cache_django.semantic import stats_for_alias

    assert stats_for_alias("no-such-alias") is None
    before = stats_for_alias(ALIAS)
    assert before is not None and semantic.namespace in before["namespaces"]
    semantic.store(QUESTION, "A web framework.", scope="s")
    semantic.lookup(QUESTION, scope="s")
    semantic.lookup(PARAPHRASE, scope="s")
    semantic.lookup(UNRELATED, scope="s")
    after = stats_for_alias(ALIAS)
    assert after is not None
    delta = [after[k] - before[k] for k in ("exact_hits", "semantic_hits", "misses", "lookups")]
    assert delta == [1, 1, 1, 3]
    assert after["mean_similarity"] is not None and 0.9 < after["mean_similarity"] <= 1.0


def test_semantic_figures_reach_cache_stats_and_the_admin_page(
    semantic: SemanticCache, admin_client: Any
) -> None:
    """``operations.alias_stats`` (so ``manage.py cache stats --json``) and the admin's
    alias page show the process's semantic counters of the alias."""
    from django.core.management import call_command

    from lexigram_cache_django import operations

    semantic.store(QUESTION, "A web framework.", scope="s")
    semantic.lookup(QUESTION, scope="s")
    semantic.lookup(UNRELATED, scope="s")
    figures = operations.alias_stats(ALIAS)["features"]["semantic"]
    assert figures["exact_hits"] >= 1 and figures["misses"] >= 1
    assert semantic.namespace in figures["namespaces"]
    assert "semantic" not in operations.alias_stats("default")["features"]
    from io import StringIO

    out = StringIO()
    call_command("cache", "stats", ALIAS, "--json", stdout=out)
    assert json.loads(out.getvalue())["aliases"][0]["features"]["semantic"]["exact_hits"] >= 1
    page = admin_client.get(f"/admin/lexigram_cache_django/cachepanel/{ALIAS}/")
    assert page.status_code == 200
    assert b'id="cache-feature-semantic"' in page.content


def test_max_entries_evicts_the_least_recently_hit(
    alias_config: dict[str, Any], minilm: SentenceTransformerEmbedder
) -> None:
    small = SemanticCache(alias=ALIAS, namespace=f"n{uuid.uuid4().hex[:8]}", max_entries=2)
    small.store(QUESTION, "django")
    small.store("What is the capital of France?", "paris")
    assert small.lookup(QUESTION) is not None  # recently hit: France is now the LRU
    small.store("How do I sort a list in Python?", "sorted()")
    assert small.lookup("What is the capital of France?") is None
    assert small.lookup(QUESTION) is not None
    assert small.lookup("How do I sort a list in Python?") is not None
    assert small.stats()["indexed_entries"] == 2


def test_cost_aware_decision_only_with_costs(semantic: SemanticCache) -> None:
    semantic.store(QUESTION, "A web framework.", scope="t")
    hit = semantic.lookup(PARAPHRASE, scope="t")
    assert hit is not None
    strict = hit.similarity + 0.01
    assert semantic.lookup(PARAPHRASE, scope="t", threshold=strict) is None
    # An expensive call accepts a little less similarity than the plain threshold...
    rich = {"api_cost_per_1k_tokens": 0.06, "expected_tokens": 4000}
    assert semantic.lookup(PARAPHRASE, scope="t", threshold=strict, **rich) is not None
    # ...a free one asks for more.
    free = {"api_cost_per_1k_tokens": 0.0, "expected_tokens": 10}
    assert semantic.lookup(PARAPHRASE, scope="t", threshold=hit.similarity, **free) is None


async def test_async_twins(semantic: SemanticCache) -> None:
    await semantic.astore(QUESTION, "A web framework.", scope="t")
    exact = await semantic.alookup(QUESTION, scope="t")
    near = await semantic.alookup(PARAPHRASE, scope="t")
    assert exact is not None and exact.exact
    assert near is not None and not near.exact
    await semantic.ainvalidate(QUESTION, scope="t")
    assert await semantic.alookup(PARAPHRASE, scope="t") is None
    await semantic.astore(QUESTION, "again", scope="t")
    await semantic.aclear("t")
    assert await semantic.alookup(QUESTION, scope="t") is None


def test_decorator_sync_and_async(semantic: SemanticCache) -> None:
    calls: list[str] = []

    @semantic_cached(semantic, prompt_arg="question", scope_arg="tenant")
    def ask(question: str, tenant: int, temperature: float = 0.0) -> str:
        calls.append(question)
        return f"answer {len(calls)} for {tenant}"

    assert ask(QUESTION, tenant=1) == "answer 1 for 1"
    assert ask(PARAPHRASE, 1) == "answer 1 for 1"  # a paraphrase: served from the cache
    assert ask(QUESTION, tenant=2) == "answer 2 for 2"  # another scope: computed
    assert calls == [QUESTION, QUESTION]

    @semantic_cached(semantic, scope_arg="user")
    async def aask(prompt: str, user: str) -> str:
        calls.append(prompt)
        return f"async {prompt}"

    async def both() -> tuple[str, str]:
        return await aask("What is the capital of France?", "u"), await aask(
            "What is France's capital?", "u"
        )

    first, second = asyncio.run(both())
    assert first == second == "async What is the capital of France?"

    @semantic_cached(alias=ALIAS, namespace=semantic.namespace, threshold=0.97)
    def built_on_first_call(prompt: str) -> str:
        return "fresh"

    assert built_on_first_call(QUESTION) == "fresh"
    made = built_on_first_call.semantic_cache()  # type: ignore[attr-defined]
    assert (made.alias, made.threshold) == (ALIAS, 0.97)
    with pytest.raises(TypeError, match="no argument named 'prompt'"):
        semantic_cached(semantic)(lambda text: text)


@pytest.fixture
def worker(redis_server: Any, request: pytest.FixtureRequest, settings: Settings) -> Iterator[Any]:
    """A second Python process with its own SemanticCache on the same Redis alias."""
    config = backend_config("redis", request)
    settings.CACHES = {**settings.CACHES, ALIAS: config}
    namespace = f"x{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "SEMANTIC_CACHE_CONFIG": json.dumps(config),
        "SEMANTIC_NAMESPACE": namespace,
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        "HF_HUB_OFFLINE": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.semantic_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )

    def ask(**cmd: Any) -> dict[str, Any]:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(cmd) + "\n")
        proc.stdin.flush()
        answer: dict[str, Any] = json.loads(proc.stdout.readline())
        return answer

    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline()) == {"ready": True}
    yield ask, namespace
    assert proc.stdin is not None
    proc.stdin.write('{"op": "quit"}\n')
    proc.stdin.close()
    proc.wait(timeout=20)


def test_another_process_sees_entries_within_a_second(
    worker: Any, minilm: SentenceTransformerEmbedder
) -> None:
    ask, namespace = worker
    here = SemanticCache(alias=ALIAS, namespace=namespace, sync_interval=0.05)
    here.store(QUESTION, "A web framework.", scope="t")  # before the other process indexed
    assert here.lookup("What is the capital of France?", scope="t") is None  # index synced

    stored = ask(op="store", prompt="What is the capital of France?", response="Paris.", scope="t")
    start = time.time()
    hit = None
    while hit is None and time.time() - start < 3:
        hit = here.lookup("What is France's capital?", scope="t")
    assert hit is not None and hit.response == "Paris." and not hit.exact
    assert time.time() - stored["stored"] < 1.0

    # The other process caught up with what was stored before it started...
    assert ask(op="lookup", prompt=PARAPHRASE, scope="t")["hit"][:2] == ["A web framework.", False]
    # ...and an invalidation here removes both tiers there.
    here.invalidate(QUESTION, scope="t")
    assert ask(op="lookup", prompt=QUESTION, scope="t")["hit"] is None
    assert ask(op="lookup", prompt=PARAPHRASE, scope="t")["hit"] is None
    assert ask(op="lookup", prompt=QUESTION, scope="other")["hit"] is None

    # A clear in the other process empties both tiers here, within the sync delay.
    here.store(QUESTION, "A web framework.", scope="t")
    assert here.lookup(PARAPHRASE, scope="t") is not None
    ask(op="clear", scope="t")
    time.sleep(0.1)
    assert here.lookup(QUESTION, scope="t") is None
    assert here.lookup(PARAPHRASE, scope="t") is None


def test_fp16_index_finds_the_same_hits(
    alias_config: dict[str, Any], minilm: SentenceTransformerEmbedder
) -> None:
    namespace = f"n{uuid.uuid4().hex[:8]}"
    flat = SemanticCache(alias=ALIAS, namespace=namespace, sync_interval=0, index_kind="flat")
    half = SemanticCache(alias=ALIAS, namespace=namespace, sync_interval=0, index_kind="fp16")
    flat.store(QUESTION, "A web framework.", scope="t")
    flat.store("What is the capital of France?", "Paris.", scope="t")
    a, b = flat.lookup(PARAPHRASE, scope="t"), half.lookup(PARAPHRASE, scope="t")
    assert a is not None and b is not None and a.response == b.response
    assert abs(a.similarity - b.similarity) < 1e-3
    assert half.lookup(UNRELATED, scope="t") is None
    half.invalidate(QUESTION, scope="t")
    assert half.lookup(PARAPHRASE, scope="t") is None
    assert half.stats()["indexed_entries"] == 1
