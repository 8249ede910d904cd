"""{% cache_tagged %}: Django's {% cache %} arguments plus tags, on one flight per fragment."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from django.core.cache import caches
from django.core.cache.utils import make_template_fragment_key
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Template, TemplateSyntaxError
from pytest_django.fixtures import Settings

from example_project.petclinic.models import Owner, Pet
from lexigram_cache_django.backends.base import LexigramCache
from tests import views


class Renders:
    """A template-callable counter: ``{{ renders.bump }}`` counts fragment renders."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def bump(self) -> int:
        with self._lock:
            self.count += 1
            return self.count


def render(source: str, **context: Any) -> str:
    return Template("{% load lexigram_cache %}" + source).render(Context(context)).strip()


@pytest.fixture
def cache() -> LexigramCache:
    default = caches["default"]
    assert isinstance(default, LexigramCache)
    return default


FRAGMENT = (
    "{% cache_tagged 60 card pet.pk tags=pet tags=extra %}{{ renders.bump }}{% endcache_tagged %}"
)


def test_a_fragment_renders_once_and_a_tag_invalidates_it(cache: LexigramCache) -> None:
    renders = Renders()
    rex, tom = Pet(pk=1, name="Rex"), Pet(pk=2, name="Tom")

    assert render(FRAGMENT, pet=rex, extra="cards", renders=renders) == "1"
    assert render(FRAGMENT, pet=rex, extra="cards", renders=renders) == "1"
    assert render(FRAGMENT, pet=tom, extra="cards", renders=renders) == "2"  # vary_on pk
    cache.invalidate_tags(rex)
    assert render(FRAGMENT, pet=rex, extra="cards", renders=renders) == "3"
    assert render(FRAGMENT, pet=tom, extra="cards", renders=renders) == "2"
    cache.invalidate_tags("cards")
    assert render(FRAGMENT, pet=tom, extra="cards", renders=renders) == "4"


def test_tags_may_be_lists_holding_model_classes_and_rows(cache: LexigramCache) -> None:
    renders = Renders()
    source = "{% cache_tagged 60 pets tags=page_tags %}{{ renders.bump }}{% endcache_tagged %}"
    context = {"page_tags": [Pet, (Owner, 3)], "renders": renders}

    assert render(source, **context) == "1"
    cache.invalidate_tags(Owner)
    assert render(source, **context) == "1"
    cache.invalidate_tags((Owner, 3))
    assert render(source, **context) == "2"
    cache.invalidate_tags("model:petclinic.pet")  # the model tag by name, for templates
    assert render(source, **context) == "3"


def test_keys_are_djangos_fragment_keys(cache: LexigramCache) -> None:
    render(FRAGMENT, pet=Pet(pk=7), extra="x", renders=Renders())
    key = make_template_fragment_key("card", [7])
    assert cache.get(key) == "1"
    cache.delete(key)
    assert render(FRAGMENT, pet=Pet(pk=7), extra="x", renders=Renders()) == "1"


def test_timeout_none_and_using(settings: Settings) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "fragments": {
            "BACKEND": "lexigram_cache_django.backends.memory.MemoryCache",
            "LOCATION": f"fragments-{uuid.uuid4().hex}",
        },
    }
    renders = Renders()
    source = (
        '{% cache_tagged None f tags="t" using="fragments" %}{{ renders.bump }}'
        "{% endcache_tagged %}"
    )
    assert render(source, renders=renders) == "1"
    assert render(source, renders=renders) == "1"
    assert caches["fragments"].get(make_template_fragment_key("f")) == "1"
    assert caches["default"].get(make_template_fragment_key("f")) is None


def test_the_template_fragments_alias_is_the_default_when_configured(
    settings: Settings,
) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "template_fragments": {
            "BACKEND": "lexigram_cache_django.backends.memory.MemoryCache",
            "LOCATION": f"tf-{uuid.uuid4().hex}",
        },
    }
    render("{% cache_tagged 60 f %}x{% endcache_tagged %}")
    assert caches["template_fragments"].get(make_template_fragment_key("f")) == "x"


def test_threads_rendering_one_cold_fragment_render_it_once() -> None:
    renders = Renders()
    gate = threading.Barrier(12)
    source = "{% cache_tagged 60 slow tags=t %}{{ slow }}{{ renders.bump }}{% endcache_tagged %}"
    results: list[str] = []

    def slow() -> str:
        views.gate.wait()  # the first renderer waits until the 11 others wait for it
        return "slow-"

    def work() -> None:
        gate.wait()
        results.append(render(source, t="slow", slow=slow, renders=renders))

    caches["default"].reset_stats()  # type: ignore[attr-defined]
    views.gate.waiters = 11
    threads = [threading.Thread(target=work) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    views.gate.waiters = 0
    assert results == ["slow-1"] * 12
    assert renders.count == 1
    assert caches["default"].stats()["waits"] == 11  # type: ignore[attr-defined]


def test_django_caches_work_without_tags_and_refuse_tags(settings: Settings) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "locmem": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"locmem-{uuid.uuid4().hex}",
        },
    }
    renders = Renders()
    plain = '{% cache_tagged 60 f using="locmem" %}{{ renders.bump }}{% endcache_tagged %}'
    assert render(plain, renders=renders) == render(plain, renders=renders) == "1"
    with pytest.raises(ImproperlyConfigured, match="has no tags"):
        render('{% cache_tagged 60 g tags="t" using="locmem" %}x{% endcache_tagged %}')


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{% cache_tagged 60 %}x{% endcache_tagged %}", "at least 2 arguments"),
        ('{% cache_tagged "soon" f %}x{% endcache_tagged %}', "non-integer timeout"),
        ('{% cache_tagged 60 f using="nope" %}x{% endcache_tagged %}', "Invalid cache name"),
    ],
)
def test_syntax_errors(source: str, message: str) -> None:
    with pytest.raises(TemplateSyntaxError, match=message):
        render(source)


def test_a_model_class_in_the_context_is_an_error_not_a_silent_miss() -> None:
    # Django calls callables in templates: a bare model class becomes an unsaved instance.
    with pytest.raises(ValueError, match="unsaved"):
        render("{% cache_tagged 60 f tags=model %}x{% endcache_tagged %}", model=Pet)
