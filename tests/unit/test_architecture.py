"""The import rule of docs/architecture.md, checked on every module: dependencies run one way.

    actions  ->  work (and the composition root)  ->  books  ->  store | quickbooks | hubspot  ->  transport

A module may import its own room, any room of a lower layer, and the foundation (config, clock, logs, metrics).
The three adapter rooms do not import each other, except that store may use transport. The rules (books)
see storage only through the plain records of ``services.store.records`` and the ports passed to them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("actions", "services", "simulators")

# Layers, top first. Each entry: layer name and the module prefixes (rooms) that belong to it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("edge", ("actions",)),
    ("work", ("services.work", "services.accounts", "services.ops", "services.jobs", "services.bootstrap")),
    ("books", ("services.books",)),
    ("adapters", ("services.store", "services.quickbooks", "services.hubspot")),
    ("transport", ("services.transport",)),
    ("foundation", ("services.config", "services.clock", "services.logs", "services.metrics")),
)
# Third-party packages a room must not import, and why.
FORBIDDEN_PACKAGES: dict[str, tuple[str, ...]] = {
    # The rules are plain Python: no web framework, queue, database or HTTP library.
    "services.books": ("flask", "werkzeug", "marshmallow", "rq", "redis", "sqlalchemy", "alembic", "requests"),
    # Clients and transport know nothing of the database or the queue.
    "services.transport": ("flask", "rq", "sqlalchemy", "alembic"),
    "services.quickbooks": ("flask", "rq", "sqlalchemy", "alembic", "redis"),
    "services.hubspot": ("flask", "rq", "sqlalchemy", "alembic", "redis"),
    # Storage is not a web or queue concern.
    "services.store": ("flask", "rq", "requests"),
    # Only the edge speaks HTTP to HubSpot and browsers.
    "services": ("flask", "werkzeug", "marshmallow"),
    # The simulators stand in for the outside world: they use nothing of ours.
    "simulators": (),
}
# Imports across rooms that the layer order alone would forbid or allow wrongly.
ALLOWED_ACROSS = {("services.store", "services.transport")}
BOOKS_MAY_SEE_OF_STORE = ("services.store.records",)
# The simulators stand apart from the server: they import neither actions nor services.
INDEPENDENT = ("simulators",)


@dataclass(frozen=True)
class Import:
    """One import statement's target, where it stands."""

    module: str
    target: str
    line: int


def module_name(path: Path, root: Path) -> str:
    """Return the dotted module name of a file under ``root``."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(root: Path) -> Iterator[Import]:
    """Yield every import (top level or inside functions) of the project's packages."""
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = module_name(path, root)
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        yield Import(module, alias.name, node.lineno)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    # `from services.quickbooks import faults` imports a module: name it fully.
                    for alias in node.names:
                        yield Import(module, f"{node.module}.{alias.name}", node.lineno)


def room_of(module: str) -> tuple[int, str] | None:
    """Return (layer index, room prefix) of a module, or None when it is outside the layers."""
    for index, (_, rooms) in enumerate(LAYERS):
        for room in rooms:
            if module == room or module.startswith(room + "."):
                return index, room
    return None


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def problem(item: Import) -> str | None:
    """Return why an import breaks the rule, or None when it is allowed."""
    top = item.target.split(".")[0]
    for prefix, packages in FORBIDDEN_PACKAGES.items():
        if within(item.module, prefix) and top in packages:
            return f"{prefix} must not import {top}"
    if any(within(item.module, p) for p in INDEPENDENT) and top in ("actions", "services"):
        return "the simulators must not import the server"
    source, target = room_of(item.module), room_of(item.target)
    if source is None or target is None:
        return None
    (source_layer, source_room), (target_layer, target_room) = source, target
    if source_room == target_room or (source_room, target_room) in ALLOWED_ACROSS:
        return None
    if target_layer < source_layer:
        return f"{source_room} ({LAYERS[source_layer][0]}) must not import {target_room} ({LAYERS[target_layer][0]})"
    if target_layer == source_layer and LAYERS[source_layer][0] == "adapters":
        return f"{source_room} must not import its peer {target_room}"
    if source_room == "services.books" and target_room == "services.store":
        if not any(within(item.target, allowed) for allowed in BOOKS_MAY_SEE_OF_STORE):
            return "the rules see storage only through services.store.records and the ports passed in"
    return None


def violations(root: Path) -> list[str]:
    """Return every import of the tree under ``root`` that runs against the rule."""
    found = []
    for item in imports(root):
        reason = problem(item)
        if reason:
            found.append(f"{item.module}:{item.line} imports {item.target}: {reason}")
    return found


def test_every_import_runs_the_way_the_layers_allow() -> None:
    assert violations(ROOT) == []


def test_every_module_of_services_belongs_to_a_room() -> None:
    modules = [module_name(path, ROOT) for path in (ROOT / "services").rglob("*.py")]
    assert [m for m in modules if m != "services" and room_of(m) is None] == []


def write(root: Path, module: str, source: str) -> None:
    path = root.joinpath(*module.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small project tree that keeps the rule."""
    for package in PACKAGES:
        write(tmp_path, f"{package}.__init__", "")
    write(tmp_path, "services.books.sales", "from services.store.records import Execution\nimport decimal\n")
    write(tmp_path, "services.work.jobs", "from services.books import sales\nfrom services.store import executions\n")
    write(tmp_path, "services.store.executions", "import sqlalchemy\nfrom services.transport.errors import X\n")
    write(tmp_path, "actions.endpoints", "import flask\nfrom services.work import jobs\n")
    return tmp_path


def test_the_check_passes_a_tree_that_keeps_the_rule(tree: Path) -> None:
    assert violations(tree) == []


@pytest.mark.parametrize(
    ("module", "source", "reason"),
    [
        ("services.books.extra", "import sqlalchemy\n", "services.books must not import sqlalchemy"),
        ("services.books.extra", "def f():\n    import requests\n", "services.books must not import requests"),
        ("services.books.extra", "from services.work import jobs\n", "must not import services.work"),
        ("services.books.extra", "from services.store.executions import R\n", "only through services.store.records"),
        ("services.quickbooks.extra", "from services.store import records\n", "must not import its peer"),
        ("services.hubspot.extra", "from services.quickbooks.client import C\n", "must not import its peer"),
        ("services.transport.extra", "from services.store.models import Base\n", "must not import services.store"),
        ("services.store.extra", "from services.books.run import Run\n", "must not import services.books"),
        ("services.work.extra", "from actions.app import create_app\n", "must not import actions"),
        ("services.work.extra", "import flask\n", "services must not import flask"),
        ("simulators.extra", "from services.config import Config\n", "the simulators must not import the server"),
    ],
)
def test_the_check_fails_when_a_forbidden_import_is_added(tree: Path, module: str, source: str, reason: str) -> None:
    write(tree, module, source)
    found = violations(tree)
    assert len(found) == 1 and reason in found[0], found


def test_jobs_waiting_in_a_live_queue_still_find_their_functions() -> None:
    from services import jobs
    from services.work import jobs as work_jobs
    from services.work.queue import FLUSH_CALLBACKS, RUN_EXECUTION

    assert RUN_EXECUTION == "services.jobs.run_execution" and FLUSH_CALLBACKS == "services.jobs.flush_callbacks"
    assert jobs.run_execution is work_jobs.run_execution
    assert jobs.flush_callbacks is work_jobs.flush_callbacks
