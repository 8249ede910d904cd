"""Benchmarks for lexigram_cache_django: ratios vs Django's built-in backends, same run.

Run ``python -m benchmarks [scenario ...] [--rounds N] [--quick] [--json-out FILE]``.

Adding a scenario means writing ``benchmarks/scenario_<name>.py`` that provides:

* ``cases(ctx: Context) -> Iterable[Case]`` -- build the candidates (import optional
  dependencies *here*, not at module top, and call ``ctx.skip("why")`` if something is missing),
  and return ``Case`` objects; the harness measures them. Or, for measurements that are not
  simple ops/s (e.g. "how many recomputes during a stampede"), ``run(ctx) -> list[Result]``
  which may still call ``ctx.measure(case)`` for the timed parts.
* optionally ``DESCRIPTION: str`` (else the module docstring's first line is used).

Resources (caches, servers, anything via ``ctx.add_cleanup``) are released when the scenario
ends. See ``docs/benchmarks.md``.
"""
