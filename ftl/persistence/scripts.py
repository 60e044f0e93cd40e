"""One loader for every ``lua/*.lua`` script; EVALSHA with a reload on NOSCRIPT.

Parts several scripts share live once in ``lua/include/NAME.lua``; a script names each on a line
of its own, ``--- @include "NAME"``, and the loader splices the part in there (as BullMQ does),
each part once per script. Each script stays one atomic operation with its header contract.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from ftl import limits
from ftl.resources import lua_dir

KeyT = str | bytes
ArgT = str | bytes | int | float
Call = tuple[Sequence[KeyT], Sequence[ArgT]]
"""The KEYS and the ARGV of one script call."""

GENERATED = {"limits": limits.lua_source}
"""Includes made from Python declarations rather than files (``limits``: ftl/limits.py)."""
_INCLUDE = re.compile(r'^--- @include "([a-z_]+)"[ \t]*$', re.M)


def source(path: Path) -> str:
    """The script at ``path`` with its ``--- @include "NAME"`` lines replaced by
    ``include/NAME.lua`` (itself spliced the same way; a part already in is not repeated)."""
    done: set[str] = set()

    def splice(text: str) -> str:
        def part(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in done:
                return f"-- (include {name}: above)"
            done.add(name)
            if name in GENERATED:
                return GENERATED[name]()
            return splice((path.parent / "include" / f"{name}.lua").read_text()).rstrip("\n")

        return _INCLUDE.sub(part, text)

    return splice(path.read_text())


class Scripts(Mapping[str, AsyncScript]):
    """Every Lua file of ``lua/`` registered by its stem (``position_open``, ...)."""

    def __init__(self, client: aioredis.Redis, folder: Path | None = None) -> None:
        self.client = client
        self.folder = folder or lua_dir()
        self._scripts: dict[str, AsyncScript] = {}
        for path in sorted(self.folder.glob("*.lua")):
            self._scripts[path.stem] = client.register_script(source(path))
        if not self._scripts:
            raise FileNotFoundError(f"no Lua scripts in {self.folder}")

    def __getitem__(self, name: str) -> AsyncScript:
        return self._scripts[name]

    def __iter__(self) -> Any:
        return iter(self._scripts)

    def __len__(self) -> int:
        return len(self._scripts)

    async def load_all(self) -> None:
        """SCRIPT LOAD every script (at start-up, and after a Redis restart)."""
        for script in self._scripts.values():
            sha = await self.client.script_load(script.script)
            script.sha = sha

    async def call(self, name: str, keys: Sequence[KeyT], args: Sequence[ArgT], client: Any = None) -> Any:
        """EVALSHA; on NOSCRIPT (Redis restarted or failed over) load it and run it once more."""
        script = self._scripts[name]
        target = client if client is not None else self.client
        try:
            return await target.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            script.sha = await target.script_load(script.script)
            return await target.evalsha(script.sha, len(keys), *keys, *args)

    async def call_many(self, name: str, calls: Sequence[Call]) -> list[Any]:
        """EVALSHA once per (keys, args) of ``calls``, in one round trip (a pipeline, not a
        transaction: each call is atomic on its own). The calls answered NOSCRIPT run once more
        after the script is loaded; the first other error is raised, as ``execute()`` does."""
        if not calls:
            return []
        script = self._scripts[name]
        replies = await self._pipelined(script.sha, calls)
        again = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if again:
            script.sha = await self.client.script_load(script.script)
            retried = await self._pipelined(script.sha, [calls[i] for i in again])
            for i, reply in zip(again, retried, strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def _pipelined(self, sha: str, calls: Sequence[Call]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))
