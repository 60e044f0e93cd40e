"""Test-only fault hooks for whole ``ftl`` processes; the product has none of them.

Python imports ``sitecustomize`` at start-up from ``sys.path``. A test that starts ``ftl`` with
this folder on ``PYTHONPATH`` (``tests.helpers.FAULT_HOOKS``) and ``FTL_TEST_FAULT_AFTER_LUA=1``
gets an api that kills itself (SIGKILL) between a trade's Lua call and its PostgreSQL write, so
the flusher must persist that trade from the outbox. Nothing in ``ftl/`` reads the variable, and
the wheel does not ship this folder, so no configuration of a production image can enable it.
"""

from __future__ import annotations

import os

if os.environ.get("FTL_TEST_FAULT_AFTER_LUA") == "1":
    import signal
    from typing import Any

    from ftl.trading import service

    _confirm = service.TradeService._confirm

    async def _die_after_lua(self: service.TradeService, result: Any) -> None:
        if not result.replay:
            os.kill(os.getpid(), signal.SIGKILL)
        await _confirm(self, result)

    service.TradeService._confirm = _die_after_lua  # type: ignore[method-assign]
