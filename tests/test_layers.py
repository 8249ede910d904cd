"""The package's imports follow the layer table of the architecture (imports go down only).

Every ``import`` and ``from ... import`` in the package is read with :mod:`ast`, wherever
it stands: module level, inside functions, under ``if TYPE_CHECKING``. Each edge between
two of the package's modules must go from a layer to the same or a lower one as the table
below says, and the graph must have no cycle. A new module must be given its place here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "lexigram_cache_django"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

#: (layer, rank within the layer, group). A module may import a module of a lower layer,
#: or of its own layer with a lower rank, or of its own group (modules of one package).
#: Layer 5 is the leaves: nothing outside a leaf's own group may import it.
PLACES: list[tuple[str, tuple[int, int, str]]] = [
    ("exceptions", (0, 0, "exceptions")),
    ("conf", (0, 1, "conf")),
    ("signals", (0, 2, "signals")),
    ("serializers", (1, 0, "serializers")),
    ("compression", (1, 1, "compression")),
    ("encryption", (1, 2, "encryption")),
    ("codec", (1, 3, "codec")),
    ("tags", (2, 0, "tags")),
    ("metrics", (2, 1, "metrics")),
    ("circuit", (2, 2, "circuit")),
    ("failfast", (2, 3, "failfast")),
    ("protocols", (2, 4, "protocols")),
    ("locks", (2, 5, "locks")),
    ("stampede", (2, 6, "stampede")),
    ("backends.keymemo", (3, 0, "backends.base")),
    ("backends.patterns", (3, 0, "backends.base")),
    ("backends.base", (3, 0, "backends.base")),
    ("backends.tagging", (3, 0, "backends.base")),
    ("backends.remote_entries", (3, 1, "backends.remote")),
    ("backends.remote_batches", (3, 1, "backends.remote")),
    ("backends.remote", (3, 1, "backends.remote")),
    ("backends.memory_store", (3, 0, "backends.memory")),
    ("backends.memory", (3, 1, "backends.memory")),
    ("backends.memory_keys", (3, 1, "backends.memory")),
    ("backends.memory_locks", (3, 1, "backends.memory")),
    ("backends.redis", (3, 2, "backends.redis")),
    ("backends.memcached", (3, 2, "backends.memcached")),
    ("backends.tiered", (3, 2, "backends.tiered")),
    ("backends", (3, 3, "backends")),
    # Django integration: any of layers 0-3 and each other.
    *(
        (name, (4, 0, "integration"))
        for name in (
            "keys",
            "wrappers",
            "compute",
            "decorators",
            "pages",
            "request_cache",
            "invalidation",
            "lookups",
            "lookup_checks",
            "querysets",
            "model_options",
            "write_through",
            "warming",
            "revalidate",
            "refreshers",
            "operations",
            "site_metrics",
            "checks",
            "django_cache_checks",
            "tiered_checks",
            "models",
            "templatetags",
        )
    ),
    # Leaves: anything above; nothing in the package imports them.
    *(
        (name, (5, 0, name))
        for name in ("apps", "admin", "tasks", "management", "contrib", "semantic", "testing")
    ),
]


def place_of(module: str) -> tuple[int, int, str]:
    """The place of a dotted module name relative to the package (longest match wins)."""
    for name, place in sorted(PLACES, key=lambda item: -len(item[0])):
        if module == name or module.startswith(name + "."):
            return place
    raise AssertionError(f"{PACKAGE}.{module} has no place in the layer table: add it")


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The package modules that ``module`` imports, anywhere in its source."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    edges: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                stem = ".".join([*base, node.module] if node.module else base)
                absolute = f"{PACKAGE}.{stem}" if stem else PACKAGE
            else:
                absolute = node.module or ""
            # ``from pkg import sub`` imports the submodule; ``from mod import name``, mod.
            for alias in node.names:
                sub = f"{absolute}.{alias.name}"
                targets.append(sub if sub[len(PACKAGE) + 1 :] in known else absolute)
        for target in targets:
            if target == PACKAGE or not target.startswith(PACKAGE + "."):
                continue
            name = target[len(PACKAGE) + 1 :]
            if name in known and name != module:
                edges.add(name)
    return edges


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items() if name}


def allowed(source: str, target: str) -> bool:
    s_layer, s_rank, s_group = place_of(source)
    t_layer, t_rank, t_group = place_of(target)
    if s_group == t_group:
        return True
    if t_layer == 5:
        return False  # a leaf is imported by nothing but itself
    return t_layer < s_layer or (t_layer == s_layer and t_rank < s_rank) or t_layer == s_layer == 4


def test_every_module_has_a_place() -> None:
    for name in modules():
        if name:
            place_of(name)


def test_imports_only_go_down_the_layers() -> None:
    wrong = sorted(
        f"{PACKAGE}.{source} imports {PACKAGE}.{target}"
        for source, targets in graph().items()
        for target in targets
        if not allowed(source, target)
    )
    assert not wrong, "imports against the layer table:\n" + "\n".join(wrong)


def test_the_package_root_imports_nothing_of_its_own() -> None:
    source = (ROOT / "__init__.py").read_text()
    assert "import" not in source.replace("from __future__ import annotations", "")


def test_no_import_cycles() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        ("stampede", "backends.base", False),  # a feature never imports a backend
        ("locks", "stampede", False),  # within layer 2, only leftwards
        ("stampede", "locks", True),
        ("backends.redis.client", "backends.memcached.client", False),  # siblings
        ("backends.redis.cache", "backends.remote", True),
        ("backends.memory", "backends.remote", False),
        ("decorators", "apps", False),  # nothing imports a leaf
        ("admin", "operations", True),
        ("codec", "tags", False),
    ],
)
def test_the_rules_themselves(source: str, target: str, expected: bool) -> None:
    assert allowed(source, target) is expected
