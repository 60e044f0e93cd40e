"""Start modules in dependency order, stop them in reverse; a failed module stops the process."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import signal
from typing import Any, Protocol

import structlog

from ftl import logs
from ftl.runtime import roles
from ftl.runtime.context import Runtime

log = logs.get(__name__)


class Service(Protocol):
    name: str

    async def start(self) -> None: ...

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


def load_service(name: str, runtime: Runtime) -> Service:
    """Import a module's service class only when its role asks for it."""
    target = roles.MODULES[name][1]
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    service: Service = cls(runtime)
    return service


async def _run_one(service: Service) -> None:
    if service.name in roles.ROLES:  # in role "all", each line names the role that wrote it
        structlog.contextvars.bind_contextvars(role=service.name)
    structlog.contextvars.bind_contextvars(module=service.name)
    await service.run()


async def supervise(runtime: Runtime, role: str) -> int:
    """Run ``role`` until SIGINT/SIGTERM (exit 0) or until a module fails (exit 1)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started: list[Service] = []
    tasks: dict[asyncio.Task[Any], Service] = {}
    code = 0
    try:
        for name in roles.resolve(role):
            service = load_service(name, runtime)
            start = asyncio.create_task(service.start())
            waiter = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({start, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if start not in done:
                start.cancel()
                with contextlib.suppress(BaseException):
                    await start
                log.info("stopped while starting", module=name)
                return 0
            waiter.cancel()
            start.result()
            started.append(service)
            tasks[asyncio.create_task(_run_one(service), name=name)] = service
            log.info("module started", module=name)
        log.info("ready", role=role, modules=[s.name for s in started])
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is stopper:
                continue
            exc = task.exception()
            log.error(
                "module ended unexpectedly",
                module=tasks[task].name,
                error=repr(exc) if exc else "returned",
            )
            code = 1
        stopper.cancel()
        if code == 0:
            runtime.health.draining = True
            log.info("draining", seconds=runtime.settings.drain_s)
            await asyncio.sleep(runtime.settings.drain_s)
    finally:
        runtime.health.draining = True
        for service in reversed(started):
            try:
                await asyncio.wait_for(service.stop(), 5.0)
            except Exception as exc:
                log.error("module failed to stop", module=service.name, error=repr(exc))
        pending = [t for t in tasks if not t.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=3.0)
            for task in still:
                task.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        log.info("stopped", role=role, code=code)
    return code
