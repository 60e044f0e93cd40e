"""The printed report: throughput, latency by phase, recovery, ws delivery, invariants, RESULT."""

from __future__ import annotations

import bisect
import itertools
import os
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from scripts.matchday.state import MatchDayState


def pct(data: Sequence[float], p: float) -> float:
    if not data:
        return float("nan")
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class ReportMixin(MatchDayState):
    """The one report printed at the end of the day."""

    def report(
        self, ws_stats: list[dict[str, Any]], drain_s: float, checks: list[tuple[str, bool, str]], audit: str
    ) -> str:
        a = self.args
        lines = ["", "=" * 100, "FTL MATCH DAY REPORT", "=" * 100]
        lines.append(
            f"command: python -m scripts.matchday --users {a.users} --ws-clients {a.ws_clients} "
            f"--duration {a.duration:g} --speed {a.speed:g} --seed {a.seed}"
            + (" --no-faults" if a.no_faults else "")
        )
        lines.append(
            "shape: api x2, ws x1 (2 workers), flusher x1, "
            f"Redis {'embedded' if not a.redis_url else 'given'}, "
            f"PostgreSQL {'embedded' if not a.database_url else 'given'}, FTL_ENV=production, "
            f"replay x{a.speed:g} ({self.replay.duration_s / a.speed:.0f} s for the whole match), "
            f"{len(self.instruments)} match players; machine: {os.cpu_count()} CPUs"
        )
        strat = Counter(u.strategy for u in self.users)
        lines.append(f"users: {dict(strat)}; think time mean {a.think:g} s")
        span = self.end_t - self.start_t
        ok = [s for s in self.samples if s[3]]
        lines.append("")
        lines.append(
            f"trades confirmed: {len(self.confirmed)} in {span:.0f} s = {len(ok) / span:.1f} trades/s "
            f"(requests incl. retries: {len(self.samples)})"
        )
        lines.append(f"replies: {dict(sorted(self.statuses.items(), key=lambda kv: -kv[1]))}")
        lines.append("")
        lines.append("trade latency by phase (2xx, ms, from the client: send -> reply)")
        lines.append(
            f"  {'phase':<32}{'secs':>7}{'2xx':>8}{'2xx/s':>8}{'other':>8}{'p50':>9}{'p95':>9}{'p99':>9}"
        )
        for (t, name), (t2, _) in itertools.pairwise(self.phase_log):
            if name in ("warm-up", "end"):
                continue
            secs = max(t2 - t, 1e-9)
            ph = [s for s in self.samples if s[0] == name]
            lat = [s[2] for s in ph if s[3]]
            lines.append(
                f"  {name:<32}{secs:>7.1f}{len(lat):>8}{len(lat) / secs:>8.1f}{len(ph) - len(lat):>8}"
                f"{pct(lat, 50):>9.1f}{pct(lat, 95):>9.1f}{pct(lat, 99):>9.1f}"
            )
        lines.append("")
        if self.fault_results:
            fr = self.fault_results
            rec = fr.get("redis_recovery_s")
            lines.append(
                "recovery: Redis kill -> first confirmed trade "
                + (f"{rec:.2f} s" if rec is not None else "n/a")
                + f"; api kill -9 -> restarted ready {fr.get('api_restart_s', float('nan')):.1f} s"
                + f"; flusher kill -9 -> ready {fr.get('flusher_restart_s', float('nan')):.1f} s"
                + f"; replay leader {fr.get('leader', 'n/a')}"
            )
            slow = self.fault_results.get("slow")
            if slow:
                lines.append(
                    f"slow ws clients: {slow['clients']} connected, {slow['dropped_by_server']} "
                    f"dropped by the server within {slow['hold_s']:.0f} s"
                )
        ages = [x[1] for x in self.lag]
        lines.append(
            "flusher lag (age of the oldest trade in the outbox, sampled every 0.5 s): "
            f"p50 {pct(ages, 50):.2f} s, "
            f"p95 {pct(ages, 95):.2f} s, max {max(ages, default=0):.2f} s; outbox max "
            f"{max((x[2] for x in self.lag), default=0)} entries; drained {drain_s:.2f} s after the end"
        )
        lines.append("")
        lines.extend(self.ws_report(ws_stats))
        lines.append("")
        lines.extend(self.informed_report())
        lines.append("")
        lines.append("events:")
        lines.extend(f"  [{t:7.1f}s] {text}" for t, text in self.events)
        lines.append("")
        lines.append("ftl audit:")
        lines.extend(f"  {line}" for line in audit.strip().splitlines())
        lines.append("")
        for name, good, detail in checks:
            lines.append(f"INVARIANT {'PASS' if good else 'FAIL'}: {name} -- {detail}")
        lines.append(f"RESULT: {'PASS' if all(g for _, g, _ in checks) else 'FAIL'}")
        return "\n".join(lines)

    def ws_report(self, stats: list[dict[str, Any]]) -> list[str]:
        if not stats:
            return ["ws: no ws clients"]
        total = Counter[str]()
        lat_by_phase: dict[str, list[float]] = defaultdict(list)
        wall0 = time.time() - time.monotonic()  # monotonic -> wall
        phases = [(t + wall0, name) for t, name in self.phase_log]
        codes: Counter[str] = Counter()
        for s in stats:
            for k in (
                "deliveries",
                "snapshots",
                "status_only",
                "reconnects",
                "gaps",
                "connected",
                "failed_connects",
            ):
                total[k] += int(s.get(k, 0))
            codes.update(s.get("close_codes", {}))
            for sec, lats in s["buckets"].items():
                i = bisect.bisect_right([p[0] for p in phases], float(sec)) - 1
                lat_by_phase[phases[i][1] if i >= 0 else "warm-up"].extend(lats)
        all_lat = [x for v in lat_by_phase.values() for x in v]
        out = [
            f"ws: {self.args.ws_clients} clients x {self.args.ws_subs} subscriptions "
            f"in {len(stats)} processes; "
            f"{total['connected']} connected at the end; {total['deliveries']} PRICE_UPDATE delivered "
            f"(+{total['snapshots']} snapshots, +{total['status_only']} status-only), "
            f"{total['gaps']} seq gaps (conflation/Redis loss), "
            f"{total['reconnects']} reconnects, close codes {dict(codes)}",
            f"ws publish -> receipt (PRICE_UPDATE ts vs client clock, ms): p50 {pct(all_lat, 50):.1f}, "
            f"p95 {pct(all_lat, 95):.1f}, p99 {pct(all_lat, 99):.1f} (sampled {len(all_lat)})",
        ]
        for _, name in self.phase_log:
            lat = lat_by_phase.get(name)
            if lat:
                out.append(
                    f"  {name:<32} p50 {pct(lat, 50):7.1f}  p95 {pct(lat, 95):7.1f}  p99 {pct(lat, 99):7.1f}"
                )
        return out

    def informed_report(self) -> list[str]:
        informed = {u.user_id for u in self.users if u.strategy == "informed"}
        if not informed:
            return ["informed trader: none"]
        mine = [c for c in self.confirmed.values() if c.user_id in informed]
        pnl = sum(c.realised_pnl for c in mine)
        fees = sum(c.fee for c in mine)
        others = [c for c in self.confirmed.values() if c.user_id not in informed]
        o_users = max(1, len(self.users) - len(informed))
        return [
            f"informed trader ({len(informed)}, sees ratings {self.args.informed_lead:g} s ahead): "
            f"{len(mine)} trades, realised PnL {pnl / 100:+,.2f}, fees paid {fees / 100:,.2f}, "
            f"net {(pnl - fees) / 100:+,.2f} (PnL/fees {pnl / fees if fees else float('nan'):.1f}x)",
            "everyone else (per user): realised PnL "
            f"{sum(c.realised_pnl for c in others) / o_users / 100:+,.2f}, "
            f"fees {sum(c.fee for c in others) / o_users / 100:,.2f}",
        ]
