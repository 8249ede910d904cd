"""``{% cache_tagged %}``: Django's ``{% cache %}`` with tags and single flight.

::

    {% load lexigram_cache %}
    {% cache_tagged 600 pet_card pet.pk tags=pet tags=pet.owner using="default" %}
        ... expensive to render ...
    {% endcache_tagged %}

Arguments as for ``{% cache %}``: timeout (seconds, ``None`` for ever), fragment name (a
literal), then the variables the fragment varies on, and ``using="alias"``. Each
``tags=`` names one tag or a list: a model instance (its row), a string (``"pets"``,
or ``"model:petclinic.pet"`` for every row of a model: a model class in a template
context would be called, not passed). Keys are Django's
(``make_template_fragment_key``), so Django's tools for fragments work on them.
"""

from __future__ import annotations

from django import template
from django.core.cache import InvalidCacheBackendError, caches
from django.core.cache.utils import make_template_fragment_key
from django.template.base import FilterExpression, Node, NodeList, Parser, Token
from django.utils.safestring import SafeString, mark_safe

from ..compute import get_cache, get_or_compute
from ..tags import TagLike

register = template.Library()


class TaggedCacheNode(Node):
    """Renders its contents through ``get_or_set``: once per key, tag versions read first."""

    def __init__(
        self,
        nodelist: NodeList,
        timeout: FilterExpression,
        fragment_name: str,
        vary_on: list[FilterExpression],
        tags: list[FilterExpression] | None,
        using: FilterExpression | None,
    ) -> None:
        self.nodelist = nodelist
        self.timeout = timeout
        self.fragment_name = fragment_name
        self.vary_on = vary_on
        self.tags = tags
        self.using = using

    def render(self, context: template.Context) -> SafeString:
        expire = self.timeout.resolve(context)
        if expire is not None:
            try:
                expire = int(expire)
            except (ValueError, TypeError):
                raise template.TemplateSyntaxError(
                    f'"cache_tagged" tag got a non-integer timeout value: {expire!r}'
                ) from None
        if self.using is not None:
            alias = self.using.resolve(context)
        else:  # as {% cache %}: a "template_fragments" alias if there is one
            alias = "template_fragments" if "template_fragments" in caches.settings else "default"
        try:
            cache = get_cache(alias, tagged=self.tags is not None, what="{% cache_tagged %}")
        except InvalidCacheBackendError:
            raise template.TemplateSyntaxError(
                f"Invalid cache name specified for cache_tagged tag: {alias!r}"
            ) from None
        tags: list[TagLike] | None = None
        if self.tags is not None:
            tags = []
            for expression in self.tags:
                value = expression.resolve(context)
                if isinstance(value, list | set | frozenset) or (
                    isinstance(value, tuple)
                    and not (len(value) == 2 and isinstance(value[0], type))
                ):
                    tags.extend(value)
                else:
                    tags.append(value)
        vary_on = [var.resolve(context) for var in self.vary_on]
        key = make_template_fragment_key(self.fragment_name, vary_on)
        value = get_or_compute(cache, key, lambda: self.nodelist.render(context), expire, tags=tags)
        return mark_safe(str(value))


@register.tag("cache_tagged")
def do_cache_tagged(parser: Parser, token: Token) -> TaggedCacheNode:
    """``{% cache_tagged timeout name [vary_on ...] [tags=...]... [using=...] %}``."""
    nodelist = parser.parse(("endcache_tagged",))
    parser.delete_first_token()
    bits = token.split_contents()
    tag_name = bits[0]
    tags: list[FilterExpression] | None = None
    using: FilterExpression | None = None
    positional: list[str] = []
    for bit in bits[1:]:
        if bit.startswith("tags="):
            tags = tags or []
            tags.append(parser.compile_filter(bit.removeprefix("tags=")))
        elif bit.startswith("using="):
            using = parser.compile_filter(bit.removeprefix("using="))
        else:
            positional.append(bit)
    if len(positional) < 2:
        raise template.TemplateSyntaxError(
            f"{tag_name!r} tag requires at least 2 arguments: a timeout and a fragment name."
        )
    return TaggedCacheNode(
        nodelist,
        parser.compile_filter(positional[0]),
        positional[1],  # the fragment name is a literal, as in {% cache %}
        [parser.compile_filter(bit) for bit in positional[2:]],
        tags,
        using,
    )
