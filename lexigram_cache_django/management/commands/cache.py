"""``manage.py cache <subcommand>``: what an operator does to the caches.

One command, one argparse subparser per subcommand, each handler a few lines over
:mod:`lexigram_cache_django.operations` (the admin page and tasks use the same functions);
tables are made by :mod:`..output`. See docs/operations.md for every subcommand, its exit
status and the ``--json`` schema.

``cache warm [NAME ...] [--all] [--list] [--celery [--wait S]]`` runs cache warmers.
Exit status: 0 when every warmer wrote without failures, 1 when any item (or a warmer's
own function) failed, 2 when a name is not a registered warmer (nothing is run then).
In process by default; ``--celery`` enqueues the ``lexigram_cache_django.warm`` task per
warmer and follows its progress.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lexigram_cache_django import operations, warming
from lexigram_cache_django.management import output
from lexigram_cache_django.operations import OperationError

#: Exit status of ``cache health`` per worst status.
HEALTH_EXIT = {"up": 0, "degraded": 1, "breaker_open": 2, "down": 2}


class Command(BaseCommand):
    help = (
        "Operate the caches: stats, health, clear, get, delete, keys, invalidate, doctor, "
        "warm (docs/operations.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        stats = sub.add_parser("stats", help="counters per process and site-wide, server figures")
        stats.add_argument("aliases", nargs="*", metavar="ALIAS")
        stats.add_argument("--json", action="store_true", help="machine-readable output")
        stats.add_argument("--watch", type=float, metavar="SECONDS", help="refresh every SECONDS")
        stats.add_argument("--iterations", type=int, help=argparse_suppress())
        health = sub.add_parser("health", help="ping, breaker, version, memory; exit 0/1/2")
        health.add_argument("aliases", nargs="*", metavar="ALIAS")
        health.add_argument("--json", action="store_true", help="machine-readable output")
        clear = sub.add_parser("clear", help="remove every entry of one alias")
        clear.add_argument("alias", metavar="ALIAS")
        clear.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        get = sub.add_parser("get", help="one entry: value, TTL, size, tags, encoding")
        get.add_argument("alias", metavar="ALIAS")
        get.add_argument("key", metavar="KEY")
        get.add_argument("--json", action="store_true", help="machine-readable output")
        delete = sub.add_parser("delete", help="delete keys")
        delete.add_argument("alias", metavar="ALIAS")
        delete.add_argument("keys", nargs="+", metavar="KEY")
        keys = sub.add_parser("keys", help="list keys matching a glob (Redis, memory)")
        keys.add_argument("alias", metavar="ALIAS")
        keys.add_argument("pattern", metavar="PATTERN")
        keys.add_argument("--limit", type=int, default=100, help="at most N keys (100)")
        keys.add_argument("--json", action="store_true", help="machine-readable output")
        inv = sub.add_parser("invalidate", help="invalidate tags, or a model's / rows' tags")
        inv.add_argument("--alias", help="one alias (default: those model invalidation uses)")
        inv.add_argument("--tag", action="append", default=[], metavar="TAG")
        inv.add_argument("--model", metavar="APP_LABEL.MODEL")
        inv.add_argument("--pk", action="append", default=[], metavar="PK")
        doctor = sub.add_parser("doctor", help="system checks plus a live look at each server")
        doctor.add_argument("--json", action="store_true", help="machine-readable output")
        warm = sub.add_parser(
            "warm", help="fill caches ahead of readers with the registered warmers"
        )
        self._warm_arguments(warm)

    def handle(self, *args: Any, **options: Any) -> None:
        handler = getattr(self, f"_{options['subcommand']}")
        try:
            handler(**options)
        except OperationError as exc:
            raise CommandError(str(exc)) from exc

    def _emit(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str))

    def _lines(self, lines: list[str]) -> None:
        for line in lines:
            self.stdout.write(line)

    # -- stats, health -------------------------------------------------------------------

    def _stats(self, **options: Any) -> None:
        names = options["aliases"] or operations.aliases()
        left = options["iterations"]
        while True:
            entries = [operations.alias_stats(name) for name in names]
            if options["json"]:
                self._emit(
                    {"schema": output.SCHEMA_VERSION, "time": time.time(), "aliases": entries}
                )
            else:
                if options["watch"] and self.stdout.isatty():
                    self.stdout.write("\x1b[2J\x1b[H", ending="")
                for entry in entries:
                    self._lines([*output.stats_lines(entry), ""])
            left = None if left is None else left - 1
            if not options["watch"] or left == 0:
                return
            try:
                time.sleep(options["watch"])
            except KeyboardInterrupt:
                return

    def _health(self, **options: Any) -> None:
        entries = [operations.alias_health(n) for n in options["aliases"] or operations.aliases()]
        worst = operations.worst_status([e["status"] for e in entries])
        if options["json"]:
            self._emit({"schema": output.SCHEMA_VERSION, "status": worst, "aliases": entries})
        else:
            self._lines(output.health_rows(entries))
        if HEALTH_EXIT[worst]:
            raise SystemExit(HEALTH_EXIT[worst])

    # -- clear, get, delete, keys ------------------------------------------------------------

    def _clear(self, **options: Any) -> None:
        alias = options["alias"]
        location = operations.alias_stats(alias)["location"]
        if not options["yes"]:
            if not sys.stdin.isatty():
                raise CommandError(f"refusing to clear {alias!r} without --yes (not a terminal)")
            answer = input(f"Remove every entry of {alias!r} ({location})? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                raise CommandError("not cleared")
        tty = self.stdout.isatty()

        def progress(done: int) -> None:
            if tty:
                self.stdout.write(f"\r  {done} entries removed", ending="")

        removed = operations.clear_alias(alias, progress=progress)
        if tty:
            self.stdout.write("\r", ending="")
        count = "entries" if removed is None else f"{removed} entries"
        self.stdout.write(self.style.SUCCESS(f"cleared {alias!r}: {count} removed"))

    def _get(self, **options: Any) -> None:
        info = operations.inspect_key(options["alias"], options["key"])
        if options["json"]:
            self._emit({"schema": output.SCHEMA_VERSION, **info})
        else:
            self._lines(output.inspect_lines(info))
        if not info["found"]:
            raise SystemExit(1)

    def _delete(self, **options: Any) -> None:
        removed = operations.delete_keys(options["alias"], options["keys"])
        self.stdout.write(f"deleted {removed} of {len(options['keys'])} keys")

    def _keys(self, **options: Any) -> None:
        found = operations.list_keys(options["alias"], options["pattern"], options["limit"])
        if options["json"]:
            self._emit({"schema": output.SCHEMA_VERSION, "alias": options["alias"], "keys": found})
        else:
            self._lines(found)

    # -- invalidate, doctor ------------------------------------------------------------------

    def _invalidate(self, **options: Any) -> None:
        names = operations.invalidate(
            alias=options["alias"], tags=options["tag"], model=options["model"], pks=options["pk"]
        )
        where = repr(options["alias"]) if options["alias"] else "the invalidation aliases"
        self.stdout.write(f"invalidated {len(names)} tags in {where}: {', '.join(names)}")

    def _doctor(self, **options: Any) -> None:
        findings = operations.doctor()
        if options["json"]:
            self._emit(
                {
                    "schema": output.SCHEMA_VERSION,
                    "findings": [f.as_dict() for f in findings],
                }
            )
        else:
            self._lines(output.finding_lines(findings))
        if any(f.level == "error" for f in findings):
            raise SystemExit(1)

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


def argparse_suppress() -> str:
    """Help text that hides an option (``--iterations``: for tests and scripts)."""
    import argparse

    return argparse.SUPPRESS


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = width * done // total if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
