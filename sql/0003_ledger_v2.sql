-- 0003: ledger v2 (docs/ledger.md). No row that every trade touches on the synchronous path:
-- the api writes the trade, its position and its user's wallet, and a row in ledger_pending;
-- the flusher folds pending trades into the aggregates (house wallet, instrument skew and open
-- interest) and deletes them, in one transaction, so each trade is folded exactly once.

-- The epoch of the Redis incarnation whose writes PostgreSQL accepts, per Redis key prefix. A
-- rebuild raises it (under an exclusive advisory lock that every hot-path write holds shared)
-- before it reads anything; a write carrying an older epoch is refused in its own transaction.
CREATE TABLE redis_epochs (
    prefix     text PRIMARY KEY,
    epoch      bigint NOT NULL CHECK (epoch > 0),
    started_at timestamptz NOT NULL DEFAULT now()
);

-- Trades written but not yet folded into the aggregates (a queue inside PostgreSQL).
CREATE TABLE ledger_pending (
    trade_id bigint PRIMARY KEY
);

-- No foreign keys on the rows every trade writes: each check takes FOR KEY SHARE on the parent
-- row (the instrument is shared by every trade on it: a hot row again, and MultiXacts), and
-- costs ~45 µs a trade. Redis hands out only existing users, positions and instruments; `ftl
-- audit` checks the references instead.
ALTER TABLE trades DROP CONSTRAINT trades_user_id_fkey,
                   DROP CONSTRAINT trades_position_id_fkey,
                   DROP CONSTRAINT trades_instrument_id_fkey;
ALTER TABLE cfd_positions DROP CONSTRAINT cfd_positions_user_id_fkey,
                          DROP CONSTRAINT cfd_positions_instrument_id_fkey;

-- Open interest per side, folded with the skew (skew = long_units - short_units).
ALTER TABLE instruments
    ADD COLUMN long_units bigint NOT NULL DEFAULT 0 CHECK (long_units >= 0),
    ADD COLUMN short_units bigint NOT NULL DEFAULT 0 CHECK (short_units >= 0);
UPDATE instruments i SET
    long_units = coalesce((SELECT sum(qty) FROM cfd_positions p
                           WHERE p.instrument_id = i.id AND p.status = 'open' AND p.side = 'long'), 0),
    short_units = coalesce((SELECT sum(qty) FROM cfd_positions p
                            WHERE p.instrument_id = i.id AND p.status = 'open' AND p.side = 'short'), 0);
UPDATE instruments SET skew = long_units - short_units;

-- The fence lock of a key prefix: hashtext('ftl-epoch:' || prefix), held shared by every write
-- (ftl_write_trades), exclusively by the rebuild while it raises the epoch (ftl_new_epoch).
CREATE FUNCTION ftl_new_epoch(p_prefix text) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    e bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('ftl-epoch:' || p_prefix));
    INSERT INTO redis_epochs (prefix, epoch) VALUES (p_prefix, 1)
    ON CONFLICT (prefix) DO UPDATE SET epoch = redis_epochs.epoch + 1, started_at = now()
    RETURNING epoch INTO e;
    RETURN e;
END
$fn$;

-- The ledger write (docs/ledger.md), one statement for the api (group commit) and the flusher:
-- fence lock shared, the batch's wallets locked in user order, then the set-based write, each in
-- a fresh snapshot (VOLATILE). p_rows: a JSON array of outbox entries (ledger.py params()).
-- Returns each trade's status: written present fenced gap conflict collision.
CREATE FUNCTION ftl_write_trades(p_prefix text, p_rows jsonb)
RETURNS TABLE (trade_id bigint, status text)
LANGUAGE plpgsql VOLATILE
-- Index look-ups whatever the statistics say: a plan cached while trades was small (a fresh
-- database, a match-day morning) must not scan it whole on every call once it is large.
SET enable_seqscan = off
AS $fn$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('ftl-epoch:' || p_prefix));
    PERFORM 1 FROM wallets
    WHERE user_id IN (SELECT (r ->> 'user_id')::bigint FROM jsonb_array_elements(p_rows) r)
    ORDER BY user_id FOR UPDATE;
    RETURN QUERY
    WITH e AS (
        SELECT * FROM jsonb_to_recordset(p_rows) AS x(
            trade_id bigint, kind text, user_id bigint, position_id bigint, instrument_id bigint,
            side text, qty bigint, price bigint, notional bigint, fee bigint, margin bigint,
            realised_pnl bigint, payout bigint, leverage smallint, index_price bigint,
            skew_after bigint, idempotency_key text, request_hash text, ts bigint, pos_qty bigint,
            pos_entry_price bigint, pos_entry_notional bigint, pos_margin bigint,
            pos_realised_pnl bigint, pos_status text, pos_opened_ts bigint, pos_closed_ts bigint,
            w_available bigint, w_locked bigint, epoch bigint, prev_seq bigint)
    ), s AS (
        SELECT e.trade_id, CASE
            WHEN t.id IS NOT NULL AND t.user_id = e.user_id AND t.position_id = e.position_id
                 AND t.kind = e.kind AND t.qty = e.qty THEN 'present'
            WHEN t.id IS NOT NULL THEN 'collision'
            WHEN k.id IS NOT NULL THEN 'conflict'
            WHEN e.epoch IS DISTINCT FROM (SELECT epoch FROM redis_epochs WHERE prefix = p_prefix)
                 THEN 'fenced'
            ELSE 'new' END AS status
        -- LATERAL ... LIMIT 1 (not flattened): one index probe per entry, never a join over the table
        FROM e
        LEFT JOIN LATERAL (SELECT id, user_id, position_id, kind, qty FROM trades
                           WHERE trades.id = e.trade_id LIMIT 1) t ON true
        LEFT JOIN LATERAL (SELECT id FROM trades
                           WHERE trades.user_id = e.user_id
                             AND trades.idempotency_key = e.idempotency_key LIMIT 1) k ON true
    ), n AS (
        SELECT e.*, coalesce(lag(e.trade_id) OVER (PARTITION BY e.user_id ORDER BY e.trade_id),
                             wl.seq) AS expect
        FROM e JOIN s ON s.trade_id = e.trade_id AND s.status = 'new'
        JOIN LATERAL (SELECT seq FROM wallets WHERE wallets.user_id = e.user_id LIMIT 1) wl ON true
    ), ok AS (
        SELECT * FROM (
            SELECT n.*, bool_and(n.prev_seq = n.expect)
                            OVER (PARTITION BY n.user_id ORDER BY n.trade_id) AS chained
            FROM n) c
        WHERE chained
    ), t AS (
        INSERT INTO trades (id, user_id, position_id, instrument_id, kind, side, qty, price,
                            notional, fee, margin, realised_pnl, payout, leverage, index_price,
                            skew_after, idempotency_key, request_hash, created_at)
        SELECT trade_id, user_id, position_id, instrument_id, kind, side, qty, price, notional, fee,
               margin, realised_pnl, payout, leverage, index_price, skew_after, idempotency_key,
               request_hash, to_timestamp(ts / 1000.0)
        FROM ok ORDER BY trade_id
        ON CONFLICT DO NOTHING
        RETURNING id
    ), w AS (
        SELECT * FROM ok WHERE trade_id IN (SELECT id FROM t)
    ), p AS (
        INSERT INTO cfd_positions (id, user_id, instrument_id, side, qty, entry_price,
                                   entry_notional, margin, leverage, realised_pnl, status, seq,
                                   opened_at, closed_at)
        SELECT DISTINCT ON (position_id) position_id, user_id, instrument_id, side, pos_qty,
               pos_entry_price, pos_entry_notional, pos_margin, leverage, pos_realised_pnl,
               pos_status, trade_id, to_timestamp(pos_opened_ts / 1000.0),
               to_timestamp(pos_closed_ts / 1000.0)
        FROM w ORDER BY position_id, trade_id DESC
        ON CONFLICT (id) DO UPDATE SET
            qty = EXCLUDED.qty, entry_price = EXCLUDED.entry_price,
            entry_notional = EXCLUDED.entry_notional, margin = EXCLUDED.margin,
            realised_pnl = EXCLUDED.realised_pnl, status = EXCLUDED.status, seq = EXCLUDED.seq,
            closed_at = EXCLUDED.closed_at
        WHERE cfd_positions.seq < EXCLUDED.seq
        RETURNING 1
    ), u AS (
        UPDATE wallets SET available = l.w_available, locked = l.w_locked, seq = l.trade_id,
                           updated_at = now()
        FROM (SELECT DISTINCT ON (user_id) user_id, w_available, w_locked, trade_id
              FROM w ORDER BY user_id, trade_id DESC) l
        WHERE wallets.user_id = l.user_id AND wallets.seq < l.trade_id
        RETURNING 1
    ), q AS (
        INSERT INTO ledger_pending (trade_id) SELECT id FROM t
    )
    SELECT s.trade_id, CASE WHEN s.status <> 'new' THEN s.status
                            WHEN s.trade_id IN (SELECT id FROM t) THEN 'written'
                            ELSE 'gap' END
    FROM s;
END
$fn$;
