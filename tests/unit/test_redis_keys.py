"""Redis keys are built in ``agora.redis.keys`` only: no other module of the package spells a
key prefix (the flow test in tests/integration/redis checks what Redis really holds)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import agora
from agora.redis import keys

PACKAGE = Path(agora.__file__).parent
# "agora:" followed by a key-ish word (not the "agora: message" of CLI errors), or the old
# presence prefix.
KEY_LITERAL = re.compile(r"^(agora:[a-z_-]|presence:)")
# Not Redis: Alembic's "package:directory" notation for the migrations' location.
NOT_REDIS = {("agora/db/migrate.py", "agora:migrations")}


def literals(tree: ast.AST) -> list[str]:
    """String constants, f-strings' literal parts included, excluding docstrings."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_module_but_the_namespace_module_spells_a_key() -> None:
    found: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent / "agora").as_posix()
        if relative == "redis/keys.py":
            continue
        found.extend(
            f"agora/{relative}: {text!r}"
            for text in literals(ast.parse(path.read_text()))
            if KEY_LITERAL.match(text) and (f"agora/{relative}", text) not in NOT_REDIS
        )
    assert not found, found


def test_every_family_is_in_the_namespace() -> None:
    assert all(prefix.startswith(keys.NAMESPACE) for prefix in keys.FAMILIES.values())
    assert keys.EVENTS_CHANNEL.startswith(keys.NAMESPACE)
    state, strikes = keys.rate_limit("user:1")
    assert state == "agora:rl:{user:1}"
    assert strikes == "agora:rl:{user:1}:strikes"
    fails, lock = keys.login_backoff("abc")
    assert (fails, lock) == ("agora:login-backoff:{abc}:fails", "agora:login-backoff:{abc}:lock")


def test_the_scanner_sees_keys_in_f_strings() -> None:
    tree = ast.parse('def f(u: str) -> str:\n    """agora:doc"""\n    return f"presence:{u}"\n')
    assert [t for t in literals(tree) if KEY_LITERAL.match(t)] == ["presence:"]
