"""The example project's URLs plus the decorator tests' views under /t/."""

from django.urls import include, path

from tests import views

urlpatterns = [
    path("t/plain/", views.plain),
    path("t/burst/", views.burst),
    path("t/slug/<slug:slug>/", views.by_slug),
    path("t/template/", views.template),
    path("t/private/", views.private),
    path("t/never/", views.never),
    path("t/missing/", views.missing),
    path("t/streaming/", views.streaming),
    path("t/whoami/", views.whoami),
    path("t/vary/", views.vary),
    path("t/picky/", views.picky),
    path("t/untagged/", views.untagged),
    path("t/untagged-with-tags/", views.untagged_with_tags),
    path("t/async/burst/", views.async_burst),
    path("t/async/slug/<slug:slug>/", views.async_by_slug),
    path("t/async/template/", views.async_template),
    path("t/async/private/", views.async_private),
    path("t/request-cache/", views.twice),
    path("t/async/request-cache/", views.atwice),
    path("", include("example_project.urls")),
]
