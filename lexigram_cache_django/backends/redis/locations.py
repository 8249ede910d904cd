"""Sentinel and Cluster LOCATIONs, parsed and checked (no redis-py import: the checks use it).

``redis+sentinel://[user:password@]host1:26379,host2:26379/<service>[/<db>]`` names a
Sentinel-monitored service; so does django-redis's form, ``redis://[:password@]<service>/<db>``
with ``OPTIONS["SENTINELS"] = [("host1", 26379), ...]``. ``redis+cluster://[user:password@]
host1:7000,host2:7001[/0]`` names a Redis Cluster by some of its nodes (the others are
found from ``CLUSTER SLOTS``). A password in the URL is the Redis servers' (primary,
replicas, cluster nodes); sentinels' own credentials go in ``OPTIONS["SENTINEL_KWARGS"]``.
``rediss+sentinel://`` and ``rediss+cluster://`` use TLS to the servers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from ...conf import mask_location
from ...exceptions import CacheConfigurationError

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+)(?::(\d{1,5}))?$")


@dataclass(frozen=True)
class Topology:
    """What a Sentinel or Cluster LOCATION names; ``display`` is safe to show."""

    kind: str  # "sentinel" or "cluster"
    hosts: tuple[tuple[str, int], ...]  # sentinels, or the cluster's start-up nodes
    service: str  # Sentinel's service name ("" for Cluster)
    db: int
    username: str | None
    password: str | None
    ssl: bool
    display: str

    def server_kwargs(self) -> dict[str, Any]:
        """Connection arguments for the Redis servers themselves (not the sentinels)."""
        kwargs: dict[str, Any] = {"db": self.db}
        if self.username:
            kwargs["username"] = self.username
        if self.password:
            kwargs["password"] = self.password
        return kwargs


def scheme_of(location: Any) -> str:
    """The lower-case scheme of a one-string LOCATION ('' for lists and other shapes)."""
    if not isinstance(location, str):
        return ""
    scheme, sep, _ = location.strip().partition("://")
    return scheme.lower() if sep else ""


def is_topology(location: Any, options: Any = None) -> bool:
    """Whether LOCATION (with OPTIONS) names a Sentinel service or a Cluster."""
    if scheme_of(location) in SENTINEL_SCHEMES + CLUSTER_SCHEMES:
        return True
    return isinstance(options, dict) and options.get("SENTINELS") is not None


def _bad(location: str, why: str) -> CacheConfigurationError:
    return CacheConfigurationError(f"RedisCache LOCATION {mask_location(location)!r} {why}")


def parse_host(text: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` (ValueError on anything else)."""
    found = _HOST_PORT.match(text.strip())
    if not found:
        raise ValueError(f"{text.strip()!r} is not host:port")
    port = int(found.group(2) or default_port)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not between 1 and 65535")
    return found.group(1).strip("[]"), port


def _userinfo(netloc: str) -> tuple[str, str | None, str | None]:
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        return netloc, None, None
    user, _, password = userinfo.partition(":")
    return hosts, unquote(user) or None, unquote(password) or None


def _hosts(location: str, text: str, default_port: int) -> tuple[tuple[str, int], ...]:
    try:
        hosts = tuple(parse_host(h, default_port) for h in text.split(",") if h.strip())
    except ValueError as exc:
        raise _bad(location, f"has a bad host: {exc}") from None
    if not hosts:
        raise _bad(location, "names no host")
    return hosts


def _db(location: str, text: str) -> int:
    if not text:
        return 0
    if not text.isdigit():
        raise _bad(location, f"has database {text!r}, not a number")
    return int(text)


def parse(location: str, sentinels: Sequence[Any] | None = None) -> Topology:
    """A Sentinel or Cluster LOCATION (django-redis's form when ``sentinels`` is given)."""
    location = location.strip()
    scheme, _, rest = location.partition("://")
    scheme = scheme.lower()
    if sentinels is not None:
        return _django_redis_sentinel(location, scheme, sentinels)
    if "?" in rest or "#" in rest:
        raise _bad(location, "has a query string; give connection options as lower-case OPTIONS")
    netloc, _, path = rest.partition("/")
    netloc, user, password = _userinfo(netloc)
    parts = [p for p in path.split("/")]
    display = mask_location(location)
    ssl = scheme.startswith("rediss")
    if scheme in SENTINEL_SCHEMES:
        hosts = _hosts(location, netloc, 26379)
        if not parts or not parts[0]:
            raise _bad(location, "names no service: write redis+sentinel://host:26379/mymaster/0")
        if len(parts) > 2:
            raise _bad(location, "has more than /<service>/<db> in its path")
        db = _db(location, parts[1] if len(parts) > 1 else "")
        return Topology("sentinel", hosts, unquote(parts[0]), db, user, password, ssl, display)
    if scheme in CLUSTER_SCHEMES:
        hosts = _hosts(location, netloc, 6379)
        if len(parts) > 1 or _db(location, parts[0] if parts else "") != 0:
            raise _bad(location, "names a database other than 0 (Redis Cluster has only db 0)")
        return Topology("cluster", hosts, "", 0, user, password, ssl, display)
    raise _bad(location, "is not a redis+sentinel:// or redis+cluster:// URL")


def _django_redis_sentinel(location: str, scheme: str, sentinels: Sequence[Any]) -> Topology:
    """``redis://[:pw@]<service>/<db>`` + ``SENTINELS``, as django-redis writes it."""
    if scheme not in ("redis", "rediss"):
        raise _bad(location, "must be redis://<service>/<db> when OPTIONS['SENTINELS'] is set")
    if not isinstance(sentinels, list | tuple) or not sentinels:
        raise CacheConfigurationError(
            "OPTIONS['SENTINELS'] must be a non-empty list of (host, port) pairs"
        )
    hosts: list[tuple[str, int]] = []
    for item in sentinels:
        try:
            if isinstance(item, str):
                hosts.append(parse_host(item, 26379))
            else:
                host, port = item
                hosts.append(parse_host(f"{host}:{int(port)}", 26379))
        except (TypeError, ValueError) as exc:
            raise CacheConfigurationError(
                f"OPTIONS['SENTINELS'] item {item!r} is not a (host, port) pair: {exc}"
            ) from None
    parts = urlsplit(location)
    service = parts.hostname or ""
    if not service:
        raise _bad(location, "names no service: write redis://mymaster/0")
    db = _db(location, parts.path.strip("/"))
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return Topology(
        "sentinel",
        tuple(hosts),
        service,
        db,
        user,
        password,
        scheme == "rediss",
        mask_location(location),
    )
