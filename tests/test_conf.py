"""conf.py declares every option once; docs/settings.md and the backends agree with it."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.test import override_settings
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lexigram_cache_django import conf
from lexigram_cache_django.exceptions import CacheConfigurationError

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "settings.md"


def doc_rows(first_column: str) -> dict[str, list[str]]:
    """Rows of the tables of docs/settings.md whose first header cell is ``first_column``."""
    rows: dict[str, list[str]] = {}
    header: list[str] = []
    for line in DOC.read_text().splitlines():
        if not line.startswith("|"):
            header = []
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not header:
            header = cells
            continue
        if header[0] != first_column or set(line) <= set("|-"):
            continue
        name = cells[0].strip("`")
        assert name not in rows, f"{name} is documented twice"
        rows[name] = cells[1:]
    return rows


def backends_cell(option: conf.Option) -> str:
    return "all" if option.backends == conf.ALL else ", ".join(sorted(option.backends))


def default_cell(option: conf.Option) -> str:
    if not option.backend_defaults:
        return option.documented_default()
    return ", ".join(f"{option.documented_default(b)} ({b})" for b in sorted(option.backends))


# -- the docs' tables ---------------------------------------------------------------------------


def test_every_option_is_documented_with_its_default_and_backends() -> None:
    rows = doc_rows("option")
    for name, option in conf.CACHE_OPTIONS.items():
        assert name in rows, f"{name} is missing from docs/settings.md"
        backends, default, meaning = rows[name]
        assert backends == backends_cell(option), name
        assert default == default_cell(option), name
        assert meaning == option.doc, name
    assert set(rows) == set(conf.CACHE_OPTIONS), "docs list options conf does not declare"


def test_every_lexigram_cache_key_is_documented() -> None:
    rows = doc_rows("key")
    assert set(rows) == set(conf.APP_SETTINGS)
    for name, option in conf.APP_SETTINGS.items():
        assert rows[name][0] == option.documented_default(), name


def test_the_generated_tables_are_up_to_date() -> None:
    script = ROOT / "scripts" / "settings_tables.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_check_id_is_documented() -> None:
    ids = set(re.findall(r"lexigram_cache\.[EW]\d{3}", (ROOT / "docs" / "checks.md").read_text()))
    source = (ROOT / "lexigram_cache_django" / "checks.py").read_text()
    source += (ROOT / "lexigram_cache_django" / "conf.py").read_text()
    used = {f"lexigram_cache.{code}" for code in re.findall(r'"([EW]\d{3})"', source)}
    used |= set(re.findall(r"lexigram_cache\.[EW]\d{3}", source))
    assert used and used <= ids, used - ids


# -- conf and the code that reads options ----------------------------------------------------


def test_conf_defaults_match_the_constants_in_the_code() -> None:
    from lexigram_cache_django import stampede, tags
    from lexigram_cache_django.serializers import DEFAULT_SERIALIZER

    assert conf.value({}, "TAG_TIMEOUT") == tags.DEFAULT_TAG_TIMEOUT
    assert conf.value({}, "SERIALIZER") == DEFAULT_SERIALIZER
    defaults = stampede.StampedeOptions()
    assert conf.value({}, "STAMPEDE_LOCK_TIMEOUT") == defaults.lock_timeout
    assert conf.value({}, "STAMPEDE_WAIT_TIMEOUT") == defaults.wait_timeout
    assert conf.value({}, "XFETCH_BETA") == defaults.beta
    assert conf.value({}, "TTL_JITTER") == defaults.jitter


def test_backends_read_their_options_through_conf() -> None:
    from lexigram_cache_django.backends.redis import RedisCache

    with pytest.raises(CacheConfigurationError, match="SOCKET_TIMEOUT"):
        RedisCache("redis://127.0.0.1:1", {"OPTIONS": {"SOCKET_TIMEOUT": "fast"}})
    with pytest.raises(CacheConfigurationError, match="pool_class"):
        RedisCache("redis://127.0.0.1:1", {"OPTIONS": {"pool_class": object}})
    cache = RedisCache("redis://127.0.0.1:1", {"OPTIONS": {"STAMPEDE_WAIT_TIMEOUT": 3}})
    assert cache.stampede_options.wait_timeout == 3.0


# -- the API -------------------------------------------------------------------------------------


def test_options_are_frozen_and_slotted() -> None:
    option = conf.CACHE_OPTIONS["TTL_JITTER"]
    assert not hasattr(option, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        option.default = 1.0  # type: ignore[misc]
    assert all(o.backends <= conf.BACKENDS and o.doc for o in conf.CACHE_OPTIONS.values())


def test_value_gives_the_default_per_backend_and_coerces() -> None:
    assert conf.value({}, "CONNECT_TIMEOUT", "redis") == 0.5
    assert conf.value({}, "CONNECT_TIMEOUT", "memcached") == 1.0
    timeout = conf.value({"SOCKET_TIMEOUT": 2}, "SOCKET_TIMEOUT", "redis")
    assert timeout == 2.0 and type(timeout) is float
    assert conf.value({"POOL_TIMEOUT": 0}, "POOL_TIMEOUT") == 0.0
    assert conf.value({}, "POOL_TIMEOUT") is None  # the backend falls back to SOCKET_TIMEOUT
    assert conf.value({"COMPRESS_MIN_BYTES": None}, "COMPRESS_MIN_BYTES") is None
    assert conf.value({"MAX_ENTRIES": 5}, "MAX_ENTRIES") == 5


@pytest.mark.parametrize(
    ("options", "name", "words"),
    [
        ({"SOCKET_TIMEOUT": "fast"}, "SOCKET_TIMEOUT", "must be a number"),
        ({"SOCKET_TIMEOUT": "1.0"}, "SOCKET_TIMEOUT", "without quotes"),
        ({"FAIL_SILENTLY": 1}, "FAIL_SILENTLY", "True or False"),
        ({"TTL_JITTER": 2}, "TTL_JITTER", "between 0.0 and 0.99"),
        ({"ASYNC_CLIENT": "x"}, "ASYNC_CLIENT", "one of 'asyncio', 'thread'"),
        ({"MAX_ENTRIES": True}, "MAX_ENTRIES", "not bool"),
        ({}, "NO_SUCH_OPTION", "not a lexigram cache option"),
    ],
)
def test_value_refuses_bad_values_clearly(options: dict[str, Any], name: str, words: str) -> None:
    with pytest.raises(CacheConfigurationError, match=re.escape(words)):
        conf.value(options, name)


def test_value_refuses_an_option_of_another_backend() -> None:
    with pytest.raises(CacheConfigurationError, match="not an option of the memcached backend"):
        conf.value({}, "MAX_CONNECTIONS", "memcached")


def test_option_names_per_backend() -> None:
    assert "MAX_CONNECTIONS" in conf.option_names("redis")
    assert "MAX_CONNECTIONS" not in conf.option_names("memcached")
    assert "SOCKET_TIMEOUT" not in conf.option_names("memory")
    assert conf.option_names("tiered") - conf.option_names("memory") == {
        "L1",
        "L2",
        "L1_TIMEOUT",
        "BUS",
        "INVALIDATION_CHANNEL",
    }
    with pytest.raises(CacheConfigurationError, match="unknown backend"):
        conf.option_names("mongo")


def test_app_setting_reads_lexigram_cache() -> None:
    with override_settings(LEXIGRAM_CACHE={}):
        assert conf.app_setting("INVALIDATE_CACHES") is None
        assert conf.app_setting("INVALIDATE_MODELS") == ()
    with override_settings(LEXIGRAM_CACHE={"INVALIDATE_CACHES": ["default"]}):
        assert conf.app_setting("INVALIDATE_CACHES") == ["default"]
    bad = override_settings(LEXIGRAM_CACHE={"INVALIDATE_CACHES": "default"})
    with bad, pytest.raises(CacheConfigurationError, match="INVALIDATE_CACHES"):
        conf.app_setting("INVALIDATE_CACHES")
    not_a_dict = override_settings(LEXIGRAM_CACHE=["x"])
    with not_a_dict, pytest.raises(CacheConfigurationError, match="must be a dict"):
        conf.app_setting("INVALIDATE_MODELS")


# -- mask_location -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "masked"),
    [
        ("redis:/:s3cret@127.0.0.1:6379/0", "redis:/:***@127.0.0.1:6379/0"),
        ("redis://:s3cret@host", "redis://:***@host"),
        ("redis://user:s3cret@host", "redis://user:***@host"),
        ("rediss://u:s3cret@h:6380/1?password=x", "rediss://u:***@h:6380/1?password=***"),
        ("redis://:a1@h1,redis://:b2@h2;redis://h3", "redis://:***@h1,redis://:***@h2;redis://h3"),
        (["redis://:a1@h1", "redis://u:b2@h2"], "redis://:***@h1,redis://u:***@h2"),
        (
            "redis+sentinel://:s3cret@h1:26379,h2:26379/mymaster/0",
            "redis+sentinel://:***@h1:26379,h2:26379/mymaster/0",
        ),
        ("unix:///tmp/r.sock?db=0&password=s3cret", "unix:///tmp/r.sock?db=0&password=***"),
        ("unix://:s3cret@/tmp/r.sock", "unix://:***@/tmp/r.sock"),
        (":s3cret@host:6379", ":***@host:6379"),
        ("user:s3cret@host", "user:***@host"),
        ("s3cret@host", "***@host"),
        ("redis://u:p@ss@host", "redis://u:***@host"),
        ("redis://h:6379/0?ssl_password=s3cret&db=1", "redis://h:6379/0?ssl_password=***&db=1"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("127.0.0.1:11211", "127.0.0.1:11211"),
    ],
)
def test_mask_location_examples(location: Any, masked: str) -> None:
    assert conf.mask_location(location) == masked


USERS = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True)
HOSTS = st.sampled_from(["127.0.0.1", "cache.internal", "[::1]", "h", "10.0.0.2:6380"])
SCHEMES = st.sampled_from(["redis", "rediss", "unix", "REDIS", "redis+sentinel", "http"])
#: Userinfo passwords may hold anything; query ones end at ``&``, ``#`` or a blank.
PASSWORDS = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=24)
QUERY_PASSWORDS = st.text(
    st.characters(exclude_categories=["Cs", "Zs", "Zl", "Zp", "Cc"], exclude_characters="&#"),
    min_size=1,
    max_size=24,
)
TEMPLATES = [
    "{scheme}://:{pw}@{host}/0",
    "{scheme}://{user}:{pw}@{host}",
    "{scheme}:/:{pw}@{host}:6379/0",
    "{scheme}://:{pw}@{host},{host}:26379/mymaster/0",
    "{scheme}://:{pw}@/tmp/redis.sock",
    ":{pw}@{host}",
    "{user}:{pw}@{host}",
    "{pw}@{host}",
]
QUERY_TEMPLATES = [
    "{scheme}://{host}/0?password={pw}",
    "{scheme}:///tmp/redis.sock?db=0&password={pw}&x=1",
    "{scheme}://{user}@{host}?ssl_password={pw}#f",
]


@st.composite
def locations(draw: st.DrawFn) -> tuple[Any, str, str]:
    """A LOCATION with one password in it, the password, and the LOCATION without it."""
    query = draw(st.booleans())
    template = draw(st.sampled_from(QUERY_TEMPLATES if query else TEMPLATES))
    password = draw(QUERY_PASSWORDS if query else PASSWORDS)
    if template.startswith("{pw}"):  # with a ":" it would be "user:password"
        password = password.replace(":", "") or "x"
    if template.startswith("{user}:"):  # "user:/..." with no scheme reads as scheme "user:/"
        password = password.lstrip("/") or "x"
    if draw(st.booleans()):
        password = quote(password, safe="")
    fields = {"scheme": draw(SCHEMES), "user": draw(USERS), "host": draw(HOSTS)}
    item = template.format(pw=password, **fields)
    skeleton = template.format(pw="", **fields)
    others = draw(st.lists(st.sampled_from(["redis://h2:6379/1", "redis://:@h3"]), max_size=2))
    shape = draw(st.sampled_from(["one", "list", "comma", "semicolon"]))
    parts, bare = [*others, item], [*others, skeleton]
    if shape == "list":
        return parts, password, " ".join(bare)
    if shape in ("comma", "semicolon"):
        sep = "," if shape == "comma" else ";"
        return sep.join(parts), password, sep.join(bare)
    return item, password, skeleton


@settings(derandomize=True, database=None, max_examples=400, deadline=None)
@given(locations())
def test_a_password_never_survives_mask_location(case: tuple[Any, str, str]) -> None:
    location, password, skeleton = case
    assume(password not in skeleton + ":***@")  # it would be in the output anyway
    assert password not in conf.mask_location(location)
