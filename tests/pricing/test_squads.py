"""The World Cup squads: the client against the fake Sportmonks over real HTTP, the base-price and
instrument-id rules, and ``ftl seed --from-sportmonks`` end to end on real PostgreSQL and Redis."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from ftl import limits
from ftl.cli import main
from ftl.persistence.keys import Keys
from ftl.pricing.demo import load_squads
from ftl.pricing.errors import ClientError, MalformedResponse, RateLimited, ServerError, Unauthorized
from ftl.pricing.squads import (
    INSTRUMENT_ID_OFFSET,
    MAX_INSTRUMENT_ID,
    MAX_PLAYER_ID,
    POSITION_BASE_CENTS,
    SPREAD_BP,
    Existing,
    NoTeams,
    Player,
    PriceOutOfBounds,
    SquadsClient,
    base_price_cents,
    check_start_price,
    fetch_squads,
    instrument_id,
    is_sportmonks_instrument,
    plan,
    spread_bp,
)
from ftl.realtime.protocol import MAX_INSTRUMENT_ID as WS_MAX_INSTRUMENT_ID
from tests.pricing.fake_squads import TOKEN, FakeSquads, Reply, envelope, rate_limited

SEASON = 26618
MEXICO, CANADA, USA, PLAYOFF = 18576, 18577, 18578, 18579
NO_POSITION = 37690012  # Owen Price (United States): no position anywhere in the sample
GAGNON = 37044519  # Ethan Gagnon (Canada): no position_id on the entry, 27 on the player


class FakeSleep:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


@pytest.fixture
def fake_squads() -> Iterator[FakeSquads]:
    server = FakeSquads().start()
    try:
        yield server
    finally:
        server.stop()


def client(fake: FakeSquads, token: str = TOKEN, **kwargs: Any) -> SquadsClient:
    return SquadsClient(fake.url, token, timeout_s=5.0, **kwargs)


# --- the client over real HTTP ------------------------------------------------------------------


async def test_teams_are_paged_with_the_token_in_the_header_only(fake_squads: FakeSquads) -> None:
    sm = client(fake_squads)
    try:
        teams = await sm.teams(SEASON)
    finally:
        await sm.aclose()
    assert [t.id for t in teams] == [MEXICO, CANADA, USA, PLAYOFF]
    assert [t.placeholder for t in teams] == [False, False, False, True]
    first, second = fake_squads.requests
    assert first.path == second.path == f"/v3/football/teams/seasons/{SEASON}"
    assert first.query == {"per_page": ["50"]}
    assert second.query == {"per_page": ["50"], "page": ["2"]}
    for seen in fake_squads.requests:
        assert seen.headers["Authorization"] == TOKEN
        assert "api_token" not in seen.query
    assert TOKEN not in repr(sm)


async def test_current_season_and_squad_requests(fake_squads: FakeSquads) -> None:
    sm = client(fake_squads)
    try:
        assert await sm.current_season() == SEASON
        squad = await sm.squad(SEASON, MEXICO)
    finally:
        await sm.aclose()
    league, squad_req = fake_squads.requests
    assert league.path == "/v3/football/leagues/732"
    assert league.query["include"] == ["currentSeason"]
    assert squad_req.path == f"/v3/football/squads/seasons/{SEASON}/teams/{MEXICO}"
    assert squad_req.query["include"] == ["player"]
    assert [e["player"]["display_name"] for e in squad][:1] == ["Andrés Ochoa"]


async def test_a_league_without_current_season_asks_for_season(fake_squads: FakeSquads) -> None:
    fake_squads.push(Reply(body=envelope("League", data={"id": 732, "name": "World Cup"})))
    sm = client(fake_squads)
    try:
        with pytest.raises(MalformedResponse, match="--season"):
            await sm.current_season()
    finally:
        await sm.aclose()


async def test_no_result_is_an_empty_list(fake_squads: FakeSquads) -> None:
    sm = client(fake_squads)
    try:
        assert await sm.teams(1) == []
        assert await sm.squad(SEASON, PLAYOFF) == []
        with pytest.raises(NoTeams):
            await fetch_squads(sm, 1)
    finally:
        await sm.aclose()


async def test_a_wrong_token_is_unauthorized_and_never_shown(fake_squads: FakeSquads) -> None:
    sm = client(fake_squads, token="wrong-token-secret")
    try:
        with pytest.raises(Unauthorized) as caught:
            await sm.teams(SEASON)
    finally:
        await sm.aclose()
    assert caught.value.status == 401
    assert "wrong-token-secret" not in str(caught.value) + repr(sm)


async def test_429_waits_resets_in_seconds_then_asks_again(fake_squads: FakeSquads) -> None:
    fake_squads.push(rate_limited(7))
    sleep = FakeSleep()
    sm = client(fake_squads, sleep=sleep)
    try:
        assert len(await sm.teams(SEASON)) == 4
    finally:
        await sm.aclose()
    assert sleep.slept == [7.0]


async def test_429_longer_than_max_wait_or_too_often_raises(fake_squads: FakeSquads) -> None:
    sleep = FakeSleep()
    sm = client(fake_squads, sleep=sleep, max_wait_s=60.0, retries=2)
    try:
        fake_squads.push(rate_limited(3600))
        with pytest.raises(RateLimited) as caught:
            await sm.teams(SEASON)
        assert caught.value.resets_in_seconds == 3600
        assert sleep.slept == []
        fake_squads.push(rate_limited(1), rate_limited(1), rate_limited(1))
        with pytest.raises(RateLimited):
            await sm.teams(SEASON)
        assert sleep.slept == [1.0, 1.0]
        fake_squads.push(
            Reply(status=429, body={"message": "Too Many Attempts."}, headers={"Retry-After": "2"})
        )
        assert len(await sm.teams(SEASON)) == 4
        assert sleep.slept[-1] == 2.0
    finally:
        await sm.aclose()


async def test_server_errors_and_bad_bodies(fake_squads: FakeSquads) -> None:
    sm = client(fake_squads)
    try:
        fake_squads.push(Reply(status=503, body={"message": "down"}))
        with pytest.raises(ServerError):
            await sm.teams(SEASON)
        fake_squads.push(Reply(status=400, body={"message": "bad include"}))
        with pytest.raises(ClientError):
            await sm.teams(SEASON)
        fake_squads.push(Reply(raw=b"<html>maintenance</html>"))
        with pytest.raises(MalformedResponse):
            await sm.teams(SEASON)
        fake_squads.push(Reply(body=envelope("Team", data={"id": 1})))
        with pytest.raises(MalformedResponse):
            await sm.teams(SEASON)
        endless = {"count": 1, "per_page": 1, "current_page": 1, "next_page": None, "has_more": True}
        page = envelope("Team", data=[{"id": 1, "name": "A"}], pagination=endless)
        fake_squads.push(*[Reply(body=page)] * 20)
        with pytest.raises(MalformedResponse, match="pages"):
            await sm.teams(SEASON)
    finally:
        await sm.aclose()


async def test_fetch_squads_of_the_sample(fake_squads: FakeSquads) -> None:
    sm = client(fake_squads)
    try:
        got = await fetch_squads(sm, SEASON)
    finally:
        await sm.aclose()
    assert [t.name for t in got.teams] == ["Mexico", "Canada", "United States"]
    assert [(t.id, why) for t, why in got.skipped] == [(PLAYOFF, "placeholder (not decided yet)")]
    assert len(got.players) == 10
    (refused,) = got.refused
    assert (refused.player_id, refused.name, refused.team) == (NO_POSITION, "Owen Price", "United States")
    assert refused.reason == "unknown position None"
    by_id = {p.player_id: p for p in got.players}
    assert by_id[GAGNON].position == "Attacker"  # the player's position_id, the entry has none
    assert by_id[412001].position == "Goalkeeper" and by_id[412001].team == "Mexico"
    for p in got.players:
        assert p.instrument_id == INSTRUMENT_ID_OFFSET + p.player_id
        assert p.index_price == base_price_cents(p.position, p.player_id)


async def test_fetch_squads_skips_an_unpublished_squad_and_a_second_listing(fake_squads: FakeSquads) -> None:
    with fake_squads.lock:
        fake_squads.sample["squads"].pop(str(CANADA))
        ochoa = fake_squads.sample["players"]["412001"]
    fake_squads.add_player(USA, ochoa, 24)
    sm = client(fake_squads)
    try:
        got = await fetch_squads(sm, SEASON)
    finally:
        await sm.aclose()
    assert [(t.id, why) for t, why in got.skipped] == [
        (CANADA, "no squad published"),
        (PLAYOFF, "placeholder (not decided yet)"),
    ]
    assert [(r.player_id, r.reason) for r in got.refused][-1] == (412001, "already listed by Mexico")
    assert {p.team for p in got.players if p.player_id == 412001} == {"Mexico"}


# --- the base-price rule --------------------------------------------------------------------------


@given(position=st.sampled_from(sorted(POSITION_BASE_CENTS)), pid=st.integers(1, MAX_PLAYER_ID))
def test_base_price_is_within_bounds_and_deterministic(position: str, pid: int) -> None:
    price = base_price_cents(position, pid)
    assert limits.MIN_PRICE <= price <= limits.MAX_PRICE
    assert price == base_price_cents(position, pid)
    base = POSITION_BASE_CENTS[position]
    assert base * (10_000 - SPREAD_BP) // 10_000 <= price <= base * (10_000 + SPREAD_BP) // 10_000
    assert -SPREAD_BP <= spread_bp(pid) <= SPREAD_BP


def test_the_spread_is_spread_and_fixed() -> None:
    spreads = [spread_bp(pid) for pid in range(1, 2001)]
    assert min(spreads) < -SPREAD_BP * 0.9 and max(spreads) > SPREAD_BP * 0.9
    assert abs(sum(spreads) / len(spreads)) < SPREAD_BP * 0.1
    assert base_price_cents("Attacker", 37581204) == 1000 * (10_000 + spread_bp(37581204)) // 10_000
    assert [base_price_cents("Goalkeeper", pid) for pid in (412001, 95113)] == [
        base_price_cents("Goalkeeper", 412001),
        base_price_cents("Goalkeeper", 95113),
    ]


@given(base=st.integers(-(10**6), 10**7), pid=st.integers(1, MAX_PLAYER_ID))
def test_an_out_of_bound_start_price_is_refused_never_clamped(base: int, pid: int) -> None:
    if limits.MIN_PRICE <= base <= limits.MAX_PRICE:
        assert base_price_cents("Defender", pid, bases={"Defender": base}, spread=0) == base
    else:
        with pytest.raises(PriceOutOfBounds):
            base_price_cents("Defender", pid, bases={"Defender": base}, spread=0)


def test_bad_inputs_of_the_price_rule() -> None:
    with pytest.raises(ValueError, match="position"):
        base_price_cents("Coach", 1)
    with pytest.raises(ValueError, match="spread"):
        base_price_cents("Defender", 1, spread=10_000)
    for bad in (0, 99, 100_001, True):
        with pytest.raises(PriceOutOfBounds):
            check_start_price(bad)


# --- the instrument-id rule -----------------------------------------------------------------------


@given(pid=st.integers(1, MAX_PLAYER_ID))
def test_instrument_id_is_the_player_id_past_the_offset(pid: int) -> None:
    iid = instrument_id(pid)
    assert iid - INSTRUMENT_ID_OFFSET == pid
    assert INSTRUMENT_ID_OFFSET < iid <= WS_MAX_INSTRUMENT_ID
    assert is_sportmonks_instrument(iid)


def test_instrument_ids_never_collide_with_the_demo() -> None:
    demo_ids = {p.player_id for p in load_squads()}  # the demo's instrument id is its player id
    assert len(demo_ids) == 1248
    assert max(demo_ids) < instrument_id(1)
    assert not any(is_sportmonks_instrument(i) for i in demo_ids)
    assert MAX_INSTRUMENT_ID == WS_MAX_INSTRUMENT_ID
    for bad in (0, -1, MAX_PLAYER_ID + 1, True):
        with pytest.raises(ValueError, match="outside"):
            instrument_id(bad)


def _player(pid: int, name: str = "A B", team: str = "Mexico", position: str = "Defender") -> Player:
    return Player(instrument_id(pid), pid, name, MEXICO, team, position, base_price_cents(position, pid))


def test_plan_against_the_table() -> None:
    same, renamed, fresh, demo_clash, id_clash = 11, 12, 13, 37400001, 14
    existing = [
        Existing(instrument_id(same), same, "A B", "Mexico", "Defender"),
        Existing(instrument_id(renamed), renamed, "A B", "Mexico", "Defender"),
        Existing(demo_clash, demo_clash, "Demo Player", "Mexico", "Goalkeeper"),  # a demo row
        Existing(instrument_id(id_clash), 999, "Wrong Row", "X", "Defender"),
        Existing(instrument_id(15), 15, "Gone Player", "Canada", "Attacker"),  # left every squad
        Existing(37400002, 37400002, "Other Demo", "Mexico", "Defender"),  # not ours: not listed
    ]
    players = [_player(same), _player(renamed, team="México"), _player(fresh)]
    players += [_player(demo_clash), _player(id_clash)]
    got = plan(players, existing)
    assert [p.player_id for p in got.write] == [same, renamed, fresh]
    assert (got.new, got.changed, got.unchanged) == (1, 1, 1)
    assert [(r.player_id, r.reason) for r in got.refused] == [
        (demo_clash, "player id already belongs to instrument 37400001"),
        (id_clash, f"instrument {instrument_id(id_clash)} belongs to player id 999"),
    ]
    assert [k.name for k in got.kept] == ["Wrong Row", "Gone Player"]  # in our id range, in no squad
    assert [k.name for k in plan([], existing, refused=[same, renamed, 15]).kept] == ["Wrong Row"]


# --- ftl seed --from-sportmonks, end to end -------------------------------------------------------


@dataclass
class Env:
    database_url: str
    redis_url: str
    keys: Keys
    fake: FakeSquads


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch,
    fake_squads: FakeSquads,
    own_db: str,
    redis_url: str,
    keys: Keys,
    tmp_path: Path,
) -> Iterator[Env]:
    for name in os.environ:
        if name.startswith("FTL_") and not name.startswith("FTL_TEST_"):
            monkeypatch.delenv(name)
    settings = {
        "FTL_ENV": "test",
        "FTL_DATABASE_URL": own_db,
        "FTL_REDIS_URL": redis_url,
        "FTL_REDIS_PREFIX": keys.prefix,
        "FTL_DATA_DIR": str(tmp_path),
        "FTL_SPORTMONKS_URL": fake_squads.url,
        "FTL_SPORTMONKS_TOKEN": TOKEN,
        "FTL_LOG_LEVEL": "warning",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    yield Env(own_db, redis_url, keys, fake_squads)
    r = redis.Redis.from_url(redis_url)
    try:
        found = list(r.scan_iter(match=f"{keys.prefix}*", count=1000))
        if found:
            r.delete(*found)
    finally:
        r.close()


def seed(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(["seed", *args])
    out = capsys.readouterr()
    return code, out.out.splitlines(), out.err


def rows(env: Env) -> dict[int, tuple[Any, ...]]:
    with psycopg.connect(env.database_url) as conn:
        cur = conn.execute(
            "SELECT id, player_id, name, team, position, index_price, depth, skew_cap, status "
            "FROM instruments ORDER BY id"
        )
        return {r[0]: r for r in cur.fetchall()}


def hot_index(env: Env, iid: int) -> int:
    r = redis.Redis.from_url(env.redis_url)
    try:
        return int(r.hget(env.keys.instrument(iid), "index") or 0)
    finally:
        r.close()


def test_seed_loads_the_current_season_into_postgres_and_redis(
    cli_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = seed(capsys, "--from-sportmonks")
    assert code == 1  # one player refused, the rest loaded
    assert out[0] == (
        f"season {SEASON}: 3 teams, 10 players loaded (10 new, 0 changed, 0 unchanged), 1 refused, 0 kept"
    )
    assert f"skipped team {PLAYOFF} UEFA Play-off A Winner: placeholder (not decided yet)" in out
    assert f"refused player {NO_POSITION} Owen Price (United States): unknown position None" in out
    assert cli_env.fake.paths()[0] == "/v3/football/leagues/732"
    table = rows(cli_env)
    assert len(table) == 10
    for iid, (_, pid, _name, _team, position, price, *_rest) in table.items():
        assert iid == INSTRUMENT_ID_OFFSET + pid
        assert price == base_price_cents(position, pid)
        assert hot_index(cli_env, iid) == price
    assert table[instrument_id(GAGNON)][2:5] == ("Ethan Gagnon", "Canada", "Attacker")


def test_rerun_is_idempotent_updates_names_and_never_resets_a_price(
    cli_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_env.fake.remove_player(USA, NO_POSITION)
    code, out, _ = seed(capsys, "--from-sportmonks", "--season", str(SEASON))
    assert code == 0 and "/v3/football/leagues/732" not in cli_env.fake.paths()
    before = rows(cli_env)
    code, out, _ = seed(capsys, "--from-sportmonks", "--season", str(SEASON))
    assert code == 0
    assert out == [
        f"season {SEASON}: 3 teams, 10 players loaded (0 new, 0 changed, 10 unchanged), 0 refused, 0 kept",
        f"skipped team {PLAYOFF} UEFA Play-off A Winner: placeholder (not decided yet)",
    ]
    assert rows(cli_env) == before

    traded = instrument_id(412001)  # what index_update.lua and the flusher leave after trading
    with psycopg.connect(cli_env.database_url) as conn:
        conn.execute("UPDATE instruments SET index_price = 4321 WHERE id = %s", (traded,))
    r = redis.Redis.from_url(cli_env.redis_url)
    try:
        r.hset(cli_env.keys.instrument(traded), "index", 4321)
    finally:
        r.close()
    cli_env.fake.rename_team(MEXICO, "México")
    code, out, _ = seed(capsys, "--from-sportmonks", "--season", str(SEASON))
    assert code == 0
    assert out[0].endswith("(0 new, 4 changed, 6 unchanged), 0 refused, 0 kept")
    after = rows(cli_env)
    assert {row[3] for row in after.values() if row[1] in (412001, 3185023, 28940577, 37581204)} == {"México"}
    assert after[traded][5] == 4321 and hot_index(cli_env, traded) == 4321
    for iid, row in after.items():
        if iid != traded:
            assert row[5] == before[iid][5]
            assert row[:3] + row[4:] == before[iid][:3] + before[iid][4:]


def test_a_player_who_left_every_squad_is_kept_and_listed(
    cli_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_env.fake.remove_player(USA, NO_POSITION)
    assert seed(capsys, "--from-sportmonks", "--season", str(SEASON))[0] == 0
    before = rows(cli_env)
    cli_env.fake.remove_player(CANADA, 13420088)
    code, out, _ = seed(capsys, "--from-sportmonks", "--season", str(SEASON))
    assert code == 0
    assert out[0].endswith("9 players loaded (0 new, 0 changed, 9 unchanged), 0 refused, 1 kept")
    gone = instrument_id(13420088)
    assert f"kept instrument {gone} Noah Tremblay (Canada): in no squad now; not deleted" in out
    assert rows(cli_env) == before


def test_a_real_player_never_takes_over_a_demo_instrument(
    cli_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    assert seed(capsys)[0] == 0  # the bundled demo: instrument id = invented player id
    demo = rows(cli_env)
    cli_env.fake.remove_player(USA, NO_POSITION)
    with cli_env.fake.lock:
        real = dict(cli_env.fake.sample["players"]["95113"], id=37400001, display_name="Real Keeper")
    cli_env.fake.add_player(CANADA, real, 24)
    code, out, _ = seed(capsys, "--from-sportmonks", "--season", str(SEASON))
    assert code == 1
    assert (
        "refused player 37400001 Real Keeper (Canada): player id already belongs to instrument 37400001"
        in out
    )
    table = rows(cli_env)
    assert len(table) == len(demo) + 10
    assert {iid: row for iid, row in table.items() if iid in demo} == demo


def test_failures_exit_2_and_write_nothing(
    cli_env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTL_SPORTMONKS_TOKEN", "wrong-token-secret")
    code, out, err = seed(capsys, "--from-sportmonks", "--season", str(SEASON))
    assert code == 2 and out == []
    assert "unauthorized (401)" in err and "wrong-token-secret" not in err
    monkeypatch.setenv("FTL_SPORTMONKS_TOKEN", TOKEN)
    code, _, err = seed(capsys, "--from-sportmonks", "--season", "1")
    assert code == 2 and "season 1 lists no team" in err
    monkeypatch.delenv("FTL_SPORTMONKS_TOKEN")
    code, _, err = seed(capsys, "--from-sportmonks")
    assert code == 2 and "FTL_SPORTMONKS_TOKEN is not set" in err
    assert rows(cli_env) == {}


def test_season_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seed", "--season", "5"]) == 2
    assert "--season needs --from-sportmonks" in capsys.readouterr().err
    for argv in (
        ["seed", "--file", "x.json", "--from-sportmonks"],
        ["seed", "--from-sportmonks", "--season", "0"],
    ):
        with pytest.raises(SystemExit):
            main(argv)
