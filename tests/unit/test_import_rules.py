"""The layering rules of docs/architecture.md ("Import rules"), read from the source's imports
(ast, so every ``import`` counts, including ones inside functions and ``TYPE_CHECKING``)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import agora

PACKAGE = Path(agora.__file__).parent
SERVICES = "agora.services"
# Where a process picks the service it runs or an operator command of one: the wiring, not
# infrastructure (docs/architecture.md).
ENTRY_POINTS = frozenset({"agora.cli", "agora.server", "agora.__main__"})
# A statement keyword followed by its clause, as SQL spells it; prose in docstrings does not
# match (checked below against every route module).
SQL = re.compile(
    r"\b(SELECT\b.*\bFROM|INSERT\s+INTO|UPDATE\b.*\bSET|DELETE\s+FROM|WITH\b.*\bAS\s*\()\b",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module

    @property
    def service(self) -> str | None:
        return service_of(self.name)

    def imports(self) -> set[str]:
        found: set[str] = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = self._resolve(node)
                found.add(base)
                # ``from agora.services import auth`` imports a module, not a name
                found.update(f"{base}.{alias.name}" for alias in node.names)
        return found

    def _resolve(self, node: ast.ImportFrom) -> str:
        if node.level == 0:
            return node.module or ""
        package = self.name.split(".")
        if self.path.name != "__init__.py":
            package = package[:-1]
        base = package[: len(package) - node.level + 1]
        return ".".join([*base, node.module] if node.module else base)


def service_of(name: str) -> str | None:
    parts = name.split(".")
    if parts[:2] == ["agora", "services"] and len(parts) > 2:
        return parts[2]
    return None


def modules() -> list[Module]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(relative.parts)
        if parts[-1] == "__init__":
            parts.pop()
        found.append(Module(".".join(parts), path, ast.parse(path.read_text(), str(path))))
    return found


MODULES = modules()


def test_the_rules_see_the_whole_package() -> None:
    names = {module.name for module in MODULES}
    assert {"agora.app", "agora.redis.access", "agora.services.posts.routes"} <= names
    auth_routes = next(m for m in MODULES if m.name == "agora.services.auth.routes")
    assert "agora.services.auth.service" in auth_routes.imports()


def test_infrastructure_never_imports_a_service() -> None:
    broken = sorted(
        f"{module.name} imports {imported}"
        for module in MODULES
        if module.service is None and module.name != SERVICES and module.name not in ENTRY_POINTS
        for imported in module.imports()
        if imported == SERVICES or imported.startswith(f"{SERVICES}.")
    )
    assert not broken, broken


def test_services_never_import_each_other() -> None:
    broken = sorted(
        f"{module.name} imports {imported}"
        for module in MODULES
        if module.service is not None
        for imported in module.imports()
        if (other := service_of(imported)) is not None and other != module.service
    )
    assert not broken, broken


ROUTES = [m for m in MODULES if m.service is not None and m.name.endswith(".routes")]


@pytest.mark.parametrize("module", ROUTES, ids=lambda module: module.name)
def test_routes_hold_no_sql(module: Module) -> None:
    """Routes are thin: no driver, no pool, no repository, and no SQL text of their own."""
    data_access = sorted(
        imported
        for imported in module.imports()
        if imported.split(".")[0] == "asyncpg"
        or imported == "agora.db"
        or imported.startswith("agora.db.")
        or imported.rsplit(".", 1)[-1].endswith("repository")
    )
    assert not data_access, data_access
    sql = [
        node.value[:60]
        for node in ast.walk(module.tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value)
    ]
    assert not sql, sql


def test_the_sql_pattern_finds_sql() -> None:
    assert SQL.search("SELECT id FROM users WHERE id = $1")
    assert SQL.search("update posts set like_count = like_count + 1")
    assert SQL.search("WITH target AS (SELECT 1)")
    assert not SQL.search("Delete a post (idempotent): 204, or 404 for no such post")


def test_violations_are_seen_in_every_import_form() -> None:
    source = (
        "from agora.services.posts import service\n"
        "from ..posts.repository import insert_post\n"
        "def later() -> None:\n"
        "    import asyncpg\n"
    )
    module = Module("agora.services.auth.routes", PACKAGE / "x.py", ast.parse(source))
    assert {
        "agora.services.posts.service",
        "agora.services.posts.repository",
        "asyncpg",
    } <= module.imports()
    assert service_of("agora.services.posts.repository") == "posts"
