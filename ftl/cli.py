"""The ``ftl`` command: run a role, list roles, migrate, audit, or run everything locally."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence

from ftl import config, logs

_HELP = """\
FTL: backend of a World Cup 2026 fantasy trading game.

Every setting comes from FTL_* environment variables (see README). Without FTL_REDIS_URL /
FTL_DATABASE_URL, ftl starts embedded redis-server and PostgreSQL under FTL_DATA_DIR (.ftl).
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftl", description=_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="run one role (api, ws, flusher) or all of them in one process",
        description="Run a role until SIGINT/SIGTERM. Refuses to start with pending migrations.",
    )
    run.add_argument(
        "--role",
        choices=["api", "ws", "flusher", "all"],
        default=None,
        help="role to run (default: FTL_ROLE, else all)",
    )
    sub.add_parser(
        "roles",
        help="print each role and the modules it starts",
        description="Print each role and the modules it starts, in start order.",
    )
    sub.add_parser(
        "migrate",
        help="apply pending sql/ migrations",
        description="Apply pending sql/ migrations in order, each in a transaction.",
    )
    seed = sub.add_parser(
        "seed",
        help="load squads as instruments: the bundled demo, a squad file, or Sportmonks' real ones",
        description="Upsert instruments from a squad file (default: the bundled 48 demo squads), or "
        "with --from-sportmonks from the World Cup's squads in the Sportmonks API (FTL_SPORTMONKS_URL, "
        "FTL_SPORTMONKS_TOKEN), into PostgreSQL, and into Redis when FTL_REDIS_URL is set (else at "
        "the next start). Safe to re-run: names, teams and positions are updated, prices never reset, "
        "nothing is deleted. --from-sportmonks exits 1 when a player was refused (the rest are "
        "loaded), 2 when nothing could be loaded.",
    )
    source = seed.add_mutually_exclusive_group()
    source.add_argument("--file", default=None, help="squads JSON file (default: bundled demo squads)")
    source.add_argument(
        "--from-sportmonks",
        action="store_true",
        help="load the real World Cup squads from Sportmonks (instrument id = 1000000000 + player id)",
    )
    seed.add_argument(
        "--season",
        type=_positive_int,
        default=None,
        help="Sportmonks season id (with --from-sportmonks; default: the World Cup's current season)",
    )
    sub.add_parser(
        "healthcheck",
        help="exit 0 when this role's /healthz answers (container HEALTHCHECK)",
        description="GET /healthz on the port of FTL_ROLE (all and api: FTL_API_PORT).",
    )
    audit = sub.add_parser(
        "audit",
        help="reconcile Redis with PostgreSQL; check conservation of money and every trade",
        description="Wait (bounded) until the flusher has written every trade so far, then compare "
        "every wallet, position and instrument in Redis with PostgreSQL, replay wallets and positions "
        "from the trade ledger, check that every trade balances, that money is conserved and no user "
        "balance is negative. Exit 0: consistent; 1: a mismatch; 2: could not run; 3: no mismatch "
        "but trading never paused, so some checks were skipped. Uses FTL_REDIS_URL / FTL_DATABASE_URL, "
        "else the embedded servers a running ftl keeps in FTL_DATA_DIR.",
    )
    audit.add_argument(
        "--wait", type=float, default=30.0, help="seconds to wait for the outbox to drain (default 30)"
    )
    audit.add_argument(
        "--attempts", type=int, default=3, help="snapshots tried to find a quiet moment (default 3)"
    )
    sub.add_parser(
        "dev",
        help="migrate, then run every role with embedded servers (local work)",
        description="Migrate, then run all roles in one process; embedded Redis and PostgreSQL "
        "unless FTL_REDIS_URL / FTL_DATABASE_URL are set.",
    )
    return parser


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def _settings(role: str | None = None) -> config.Settings:
    try:
        settings = config.load()
    except config.ConfigError as exc:
        print(f"ftl: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if role:
        settings = settings.replace(role=role)
    logs.configure(settings.log_format, settings.log_level, settings.role)
    return settings


def _run(settings: config.Settings, role: str, *, auto_migrate: bool) -> int:
    from ftl.persistence.embedded import DataDirBusy
    from ftl.persistence.migrations import PendingMigrations
    from ftl.runtime.context import Runtime
    from ftl.runtime.supervisor import supervise

    runtime = Runtime(settings, auto_migrate=auto_migrate)
    loop_factory = None
    if settings.event_loop == "uvloop":
        import uvloop

        loop_factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(supervise(runtime, role))
    except (PendingMigrations, DataDirBusy) as exc:
        print(f"ftl: {exc}", file=sys.stderr)
        return 2


def _with_database(settings: config.Settings, work: Callable[[str], None]) -> int:
    """Run ``work(database_url)`` on FTL_DATABASE_URL, or on the embedded PostgreSQL of the data dir."""
    if settings.database_url:
        work(settings.database_url)
        return 0
    from ftl.persistence.embedded import DataDirBusy, DataDirLock, EmbeddedPostgres

    lock = DataDirLock(settings.data_dir)
    try:
        lock.acquire()
    except DataDirBusy as exc:
        print(f"ftl: {exc}", file=sys.stderr)
        return 2
    server = EmbeddedPostgres(settings.data_dir)
    try:
        asyncio.run(server.start())
        work(server.url)
    finally:
        server.stop()
        lock.release()
    return 0


def _migrate(settings: config.Settings) -> int:
    from ftl.persistence.migrations import migrate_sync

    applied: list[str] = []
    code = _with_database(settings, lambda url: applied.extend(migrate_sync(url)))
    if code == 0:
        print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return code


def _seed(settings: config.Settings, path: str | None) -> int:
    from ftl.trading.seed import demo_seeds, squad_file_seeds

    seeds = demo_seeds() if path is None else squad_file_seeds(path)

    async def write(database_url: str) -> None:
        from ftl.trading.seed import write_instruments

        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await write_instruments(conn, seeds)
        if settings.redis_url:
            from ftl.persistence.stores import Stores
            from ftl.trading.seed import load_hot_instruments

            stores = await Stores.open(settings, settings.redis_url, database_url)
            try:
                await load_hot_instruments(stores)
            finally:
                await stores.close()

    import psycopg

    code = _with_database(settings, lambda url: asyncio.run(write(url)))
    if code == 0:
        print(f"seeded {len(seeds)} instruments")
    return code


def _seed_from_sportmonks(settings: config.Settings, season: int | None) -> int:
    """Fetch every squad first (nothing is written if Sportmonks fails), then upsert."""
    from ftl.pricing import squads
    from ftl.pricing.errors import FeedError

    token = settings.sportmonks_token
    if not token:
        print("ftl: FTL_SPORTMONKS_TOKEN is not set", file=sys.stderr)
        return 2

    async def fetch() -> squads.Squads:
        client = squads.SquadsClient(settings.sportmonks_url, token)
        try:
            season_id = season if season is not None else await client.current_season()
            return await squads.fetch_squads(client, season_id)
        finally:
            await client.aclose()

    try:
        found = asyncio.run(fetch())
    except FeedError as exc:
        print(f"ftl: Sportmonks: {exc}", file=sys.stderr)
        return 2
    plans: list[squads.Plan] = []

    async def write(database_url: str) -> None:
        from ftl.trading.seed import InstrumentSeed, load_hot_instruments, write_instruments

        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            cur = await conn.execute("SELECT id, player_id, name, team, position FROM instruments")
            existing = [squads.Existing(*row) for row in await cur.fetchall()]
            done = squads.plan(found.players, existing, [r.player_id for r in found.refused])
            seeds = [
                InstrumentSeed(p.instrument_id, p.player_id, p.name, p.team, p.position, p.index_price)
                for p in done.write
            ]
            await write_instruments(conn, seeds)  # on conflict: never the index price
        plans.append(done)
        if settings.redis_url:
            from ftl.persistence.stores import Stores

            stores = await Stores.open(settings, settings.redis_url, database_url)
            try:
                await load_hot_instruments(stores)  # only those Redis lacks
            finally:
                await stores.close()

    import psycopg

    code = _with_database(settings, lambda url: asyncio.run(write(url)))
    if code != 0:
        return code
    (done,) = plans
    refused = found.refused + done.refused
    print(
        f"season {found.season_id}: {len(found.teams)} teams, {len(done.write)} players loaded "
        f"({done.new} new, {done.changed} changed, {done.unchanged} unchanged), "
        f"{len(refused)} refused, {len(done.kept)} kept"
    )
    for team, why in found.skipped:
        print(f"skipped team {team.id} {team.name}: {why}")
    for r in refused:
        print(f"refused player {r.player_id} {r.name} ({r.team}): {r.reason}")
    for k in done.kept:
        print(f"kept instrument {k.id} {k.name} ({k.team}): in no squad now; not deleted")
    return 1 if refused else 0


def _healthcheck(settings: config.Settings) -> int:
    import urllib.error
    import urllib.request

    port = {"ws": settings.ws_port, "flusher": settings.flusher_port}.get(settings.role, settings.api_port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return 0 if resp.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"ftl: /healthz on port {port} did not answer: {exc}", file=sys.stderr)
        return 1


def _audit(settings: config.Settings, wait_s: float, attempts: int) -> int:
    from ftl.audit import audit, embedded_urls
    from ftl.persistence.stores import Stores

    redis_url, database_url = settings.redis_url, settings.database_url
    if not (redis_url and database_url):
        found = embedded_urls(settings.data_dir)
        if found is None:
            print(
                f"ftl: no running embedded servers in {settings.data_dir.resolve()}; start `ftl dev` "
                "or set FTL_REDIS_URL and FTL_DATABASE_URL",
                file=sys.stderr,
            )
            return 2
        redis_url, database_url = redis_url or found[0], database_url or found[1]

    async def run() -> int:
        stores = await Stores.open(settings, redis_url, database_url)
        try:
            report = await audit(stores, wait_s=wait_s, attempts=max(1, attempts))
        finally:
            await stores.close()
        print(report.render())
        return report.exit_code

    return asyncio.run(run())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.command == "roles":
        from ftl.runtime.roles import describe

        print(describe())
        return 0
    if args.command == "run":
        settings = _settings(args.role)
        return _run(settings, settings.role, auto_migrate=False)
    if args.command == "migrate":
        return _migrate(_settings())
    if args.command == "seed":
        if args.season is not None and not args.from_sportmonks:
            print("ftl: --season needs --from-sportmonks", file=sys.stderr)
            return 2
        if args.from_sportmonks:
            return _seed_from_sportmonks(_settings(), args.season)
        return _seed(_settings(), args.file)
    if args.command == "healthcheck":
        return _healthcheck(_settings())
    if args.command == "audit":
        return _audit(_settings(), args.wait, args.attempts)
    if args.command == "dev":
        settings = _settings("all")
        return _run(settings, "all", auto_migrate=True)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
