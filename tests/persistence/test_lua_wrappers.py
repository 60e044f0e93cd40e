"""Every Lua script has exactly one typed wrapper, all in ftl/persistence/lua_scripts.py, and no
other module of ``ftl/`` runs a script by its name; plus the loader's pipelined calls."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

import ftl
from ftl.persistence import lua_scripts
from ftl.persistence.keys import Keys
from ftl.persistence.lua_scripts import LuaScripts
from ftl.persistence.scripts import Scripts
from ftl.resources import lua_dir

PACKAGE = Path(ftl.__file__).parent
WRAPPERS = Path(lua_scripts.__file__)
LOADER = PACKAGE / "persistence" / "scripts.py"
SCRIPT_NAMES = frozenset(p.stem for p in lua_dir().glob("*.lua"))
RUNNERS = frozenset({"call", "call_many"})
"""The ``Scripts`` methods that run a script by name (only the wrappers call them)."""
RAW = frozenset({"evalsha", "evalsha_ro", "eval", "eval_ro", "register_script", "call_many"})
"""Redis client methods that run a script: only the loader uses them."""


def _receiver(node: ast.expr) -> str:
    """The last name of an expression: ``stores.scripts`` -> ``scripts``."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def script_runs_by_name(tree: ast.AST) -> list[str]:
    """Where a module outside the wrappers runs a Lua script by its name (line: what)."""
    found: list[str] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and node.value in SCRIPT_NAMES:
            found.append(f"{line}: the script name {node.value!r}")
        elif isinstance(node, ast.Attribute) and node.attr in RAW:
            found.append(f"{line}: .{node.attr}")
        elif isinstance(node, ast.Attribute) and node.attr in RUNNERS and _receiver(node.value) == "scripts":
            found.append(f"{line}: scripts.{node.attr}")
        elif isinstance(node, ast.Subscript) and _receiver(node.value) == "scripts":
            found.append(f"{line}: scripts[...]")
    return found


def wrapped_scripts(tree: ast.Module) -> dict[str, list[ast.AsyncFunctionDef | ast.FunctionDef]]:
    """Script name -> the functions of the wrappers module that run it (``.call("name", ...)``)."""
    runs: dict[str, list[ast.AsyncFunctionDef | ast.FunctionDef]] = {}
    for func in ast.walk(tree):
        if not isinstance(func, ast.AsyncFunctionDef | ast.FunctionDef):
            continue
        for node in ast.walk(func):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in RUNNERS
            ):
                continue
            name = node.args[0] if node.args else None
            assert isinstance(name, ast.Constant) and isinstance(name.value, str), (
                f"{func.name}: a wrapper names its script as a literal"
            )
            runs.setdefault(name.value, []).append(func)
    return runs


def test_every_script_has_exactly_one_typed_wrapper() -> None:
    runs = wrapped_scripts(ast.parse(WRAPPERS.read_text()))
    assert set(runs) == SCRIPT_NAMES, "no wrapper, or a wrapper of no lua/*.lua script"
    for name, funcs in runs.items():
        assert [f.name for f in funcs] == [name], f"{name}.lua: one wrapper, named as the script"
        func = funcs[0]
        assert f"``{name}.lua``" in (ast.get_docstring(func) or ""), f"{name}: docstring names the file"
        params = [*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs]
        untyped = [a.arg for a in params if a.annotation is None and a.arg != "self"]
        assert not untyped, f"{name}: untyped parameters {untyped}"
        assert func.returns is not None, f"{name}: no return type"
    assert set(SCRIPT_NAMES) <= set(vars(LuaScripts)), "the wrappers are LuaScripts methods"


def test_no_other_module_runs_a_script_by_name() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in (WRAPPERS, LOADER):
            continue
        found = script_runs_by_name(ast.parse(path.read_text(), filename=str(path)))
        if found:
            offenders[str(path.relative_to(PACKAGE.parent))] = found
    assert not offenders, f"call the wrapper in ftl/persistence/lua_scripts.py instead: {offenders}"


@pytest.mark.parametrize(
    "snippet",
    [
        'await stores.scripts.call("hash_load", [key], fields)',
        "await self.scripts.call(name, keys, args)",
        'pipe.evalsha(stores.scripts["hash_load"].sha, 1, key, *fields)',
        "await scripts.call_many(name, calls)",
        "script = client.register_script(text)",
    ],
)
def test_the_check_sees_a_script_run_by_name(snippet: str) -> None:
    assert script_runs_by_name(ast.parse(snippet))


async def test_hash_load_loads_only_missing_hashes_in_one_round_trip(
    scripts: Scripts, keys: Keys, redis_client: aioredis.Redis
) -> None:
    lua = LuaScripts(scripts, keys)
    a, b = keys.instrument(1), keys.instrument(2)
    await redis_client.hset(b, "index", "7")  # Redis is ahead: left alone
    assert await lua.hash_load([(a, ["index", 5, "status", "open"]), (b, ["index", 9])]) == [True, False]
    assert await redis_client.hgetall(a) == {b"index": b"5", b"status": b"open"}
    assert await redis_client.hgetall(b) == {b"index": b"7"}
    assert await lua.hash_load([]) == []


async def test_call_many_reloads_after_noscript_and_raises_other_errors(
    scripts: Scripts, keys: Keys, redis_client: aioredis.Redis
) -> None:
    await redis_client.script_flush()  # what a Redis restart does to the script cache
    lua = LuaScripts(scripts, keys)
    assert await lua.hash_load([(keys.wallet(1), ["available", 1]), (keys.wallet(2), ["available", 2])]) == [
        True,
        True,
    ]
    with pytest.raises(ResponseError):  # HSET of a field without its value fails in the script
        await lua.hash_load([(keys.wallet(4), ["available", 4]), (keys.wallet(3), ["available"])])
    assert await redis_client.hget(keys.wallet(4), "available") == b"4"  # not a transaction


async def test_leader_and_district_wrappers_parse_their_replies(scripts: Scripts, keys: Keys) -> None:
    lua = LuaScripts(scripts, keys)
    assert await lua.leader_lock("w", "a", 5000) is True
    assert await lua.leader_lock("w", "b", 5000) is False
    assert await lua.leader_release("w", "b") is False
    assert await lua.leader_release("w", "a") is True
    assert await lua.wallet_district(5, 3) == ("missing", "")
    await lua.hash_load([(keys.wallet(5), ["available", 10, "locked", 0, "district", ""])])
    assert await lua.wallet_district(5, 3) == ("moved", "")
    assert await lua.wallet_district(5, 3) == ("same", "3")
    with pytest.raises(ValueError, match="not a user id"):
        await lua.wallet_district(0, None)
