from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.cache import cache_page as django_cache_page

from lexigram_cache_django.decorators import cache_page
from shop.models import Product


@cache_page(60, tags=[Product])
def product_list(request: HttpRequest) -> HttpResponse:
    return HttpResponse(", ".join(p.name for p in Product.objects.order_by("pk")))


@cache_page(60, tags=lambda request, pk: [(Product, pk)])
def product_detail(request: HttpRequest, pk: int) -> HttpResponse:
    product = get_object_or_404(Product, pk=pk)
    return HttpResponse(f"{product.name}: {product.price}")


@django_cache_page(60, cache="local")
def about(request: HttpRequest) -> HttpResponse:
    """Django's own cache_page (CacheMiddleware), which assert_served_from_cache reads too."""
    return HttpResponse("about us")
