"""``manage.py cache <subcommand>``: what an operator does to the caches.

One command, one argparse subparser per subcommand. Built so far:

``cache warm [NAME ...] [--all] [--list] [--celery [--wait S]]`` runs cache warmers.
Exit status: 0 when every warmer wrote without failures, 1 when any item (or a warmer's
own function) failed, 2 when a name is not a registered warmer (nothing is run then).
In process by default; ``--celery`` enqueues the ``lexigram_cache_django.warm`` task per
warmer and follows its progress.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lexigram_cache_django import warming


class Command(BaseCommand):
    help = "Operate the caches. Subcommands: warm (docs/warming.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        warm = sub.add_parser(
            "warm", help="fill caches ahead of readers with the registered warmers"
        )
        self._warm_arguments(warm)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["subcommand"] == "warm":
            self._warm(**options)

    # -- warm ----------------------------------------------------------------------------

    @staticmethod
    def _warm_arguments(parser: Any) -> None:
        parser.add_argument("names", nargs="*", metavar="NAME", help="warmers to run")
        parser.add_argument("--all", action="store_true", help="run every registered warmer")
        parser.add_argument("--list", action="store_true", help="list the warmers and exit")
        parser.add_argument(
            "--celery", action="store_true", help="enqueue the warm tasks and follow them"
        )
        parser.add_argument(
            "--wait", type=float, default=600.0, help="seconds to follow --celery tasks"
        )

    def _warm(self, **options: Any) -> None:
        known = warming.registry()
        if options["list"]:
            for name, w in sorted(known.items()):
                every = f", every {w.every}" if w.every is not None else ""
                self.stdout.write(f"{name}  (cache {w.alias!r}{every})")
            return
        names: list[str] = options["names"] or (sorted(known) if options["all"] else [])
        if not names:
            raise CommandError("name one or more warmers, or pass --all (--list lists them)")
        unknown = [name for name in names if name not in known]
        if unknown:
            self.stderr.write(f"unknown warmer(s): {', '.join(unknown)}")
            self.stderr.write(f"registered: {', '.join(sorted(known)) or 'none'}")
            raise SystemExit(2)
        reports = [
            self._follow(name, options["wait"]) if options["celery"] else self._run(name)
            for name in names
        ]
        failed = [r for r in reports if r.get("failed", 0)]
        if failed:
            raise SystemExit(1)

    def _run(self, name: str) -> dict[str, Any]:
        def progress(done: int, total: int) -> None:
            if self.stdout.isatty():
                self.stdout.write(f"\r  {name}: {_bar(done, total)}", ending="")

        report = warming.run(name, progress=progress).as_dict()
        self._summary(report)
        return report

    def _follow(self, name: str, wait: float) -> dict[str, Any]:
        result = warming.enqueue(name)
        deadline = time.monotonic() + wait
        while not result.ready() and time.monotonic() < deadline:
            info = result.info
            if result.state == "PROGRESS" and isinstance(info, dict):
                self.stdout.write(f"  {name}: {_bar(info['done'], info['total'])}")
            time.sleep(0.5)
        if not result.ready():
            self.stderr.write(f"{name}: task {result.id} still running after {wait:.0f}s")
            return {"name": name, "failed": 1}
        if not result.successful():
            self.stderr.write(f"{name}: task {result.id} failed: {result.result!r}")
            return {"name": name, "failed": 1}
        report: dict[str, Any] = result.result
        self._summary(report)
        return report

    def _summary(self, report: dict[str, Any]) -> None:
        line = (
            f"{report['name']}: {report['written']} written, {report['skipped']} skipped, "
            f"{report['failed']} failed in {report['seconds']:.2f}s (cache {report['alias']!r})"
        )
        if self.stdout.isatty():
            self.stdout.write("\r", ending="")
        if report["failed"]:
            self.stdout.write(self.style.ERROR(line))
            for error in report.get("errors", []):
                self.stdout.write(f"    {error}")
        else:
            self.stdout.write(self.style.SUCCESS(line))


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = width * done // total if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
