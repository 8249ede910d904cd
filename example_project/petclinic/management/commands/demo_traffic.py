"""``manage.py demo_traffic``: browse the running demo site, so the admin's Cache page
has real numbers to show.

Requests go over HTTP to the server (``runserver``), so the cache traffic happens in its
process, where the memory backend's counters live. Loopback addresses only, and bounded:
``--requests`` requests, ``--pause`` seconds apart. ``scripts/demo.sh`` starts it in the
background.
"""

from __future__ import annotations

import random
import time
import urllib.error
import urllib.request
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError, CommandParser

from example_project.petclinic.models import Owner, Pet

PAGES = ["/", "/owners/", "/pets/", "/species/"]


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class Command(BaseCommand):
    help = "Request the demo site's pages for a while (loopback only), to fill the cache stats."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--requests", type=int, default=600)
        parser.add_argument("--pause", type=float, default=0.5, help="seconds between requests")
        parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for it")

    def handle(self, *args: Any, **options: Any) -> None:
        base = str(options["base_url"]).rstrip("/")
        if not _loopback(base):
            raise CommandError(f"{base} is not a loopback address: demo traffic stays local")
        paths = PAGES + [f"/owners/{pk}/" for pk in Owner.objects.values_list("pk", flat=True)]
        paths += [f"/pets/{pk}/" for pk in Pet.objects.values_list("pk", flat=True)[:40]]
        self._wait_for(base, float(options["wait"]))
        rng = random.Random(0)
        statuses: dict[int, int] = {}
        for _ in range(int(options["requests"])):
            status = self._get(base + rng.choice(paths))
            statuses[status] = statuses.get(status, 0) + 1
            time.sleep(float(options["pause"]))
        shown = ", ".join(f"{count} x {status}" for status, count in sorted(statuses.items()))
        self.stdout.write(f"demo traffic: {shown}")

    @staticmethod
    def _get(url: str) -> int:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # loopback only (checked)
                response.read()
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def _wait_for(self, base: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self._get(base + "/") == 0:
            if time.monotonic() > deadline:
                raise CommandError(f"{base} did not answer within {seconds:g} s")
            time.sleep(0.5)
